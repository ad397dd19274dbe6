"""SASS tooling shared by plugins: finding NVIDIA's binary utilities and reading disassembly."""

from __future__ import annotations

from dgreg.sass.inspect import SassSummary, disassemble, summarize
from dgreg.sass.tools import find_tool

__all__ = ["SassSummary", "disassemble", "find_tool", "summarize"]
