"""Disassembling cubins and summarising what matters for GEMM kernels: tensor-core
instructions, local-memory traffic (spills), registers."""

from __future__ import annotations

import re
import subprocess
import tempfile
from collections import Counter
from pathlib import Path

import attrs

from dgreg.sass.tools import find_tool

__all__ = ["SassSummary", "disassemble", "summarize"]

_OPCODE = re.compile(r"/\*[0-9a-f]{4,}\*/\s+(?:@!?U?P\w+\s+)?([A-Z][A-Z0-9_]*(?:\.[A-Z0-9_]+)*)")


def disassemble(cubin: bytes) -> str:
    """``cuobjdump -sass`` of a cubin."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "kernel.cubin"
        path.write_bytes(cubin)
        out = subprocess.run([find_tool("cuobjdump"), "-sass", str(path)], capture_output=True,
                             text=True, check=True)
    return out.stdout


@attrs.frozen
class SassSummary:
    opcodes: Counter = attrs.field(repr=False)

    def count(self, prefix: str) -> int:
        """Instructions whose opcode starts with ``prefix`` (``QGMMA``, ``HGMMA``, ``FFMA``...)."""
        return sum(n for op, n in self.opcodes.items() if op.split(".")[0] == prefix)

    @property
    def local_memory(self) -> int:
        """Local loads and stores: spills or stack arrays, which GEMM kernels must not have."""
        return self.count("LDL") + self.count("STL")


def summarize(sass: str) -> SassSummary:
    return SassSummary(Counter(m.group(1) for m in _OPCODE.finditer(sass)))
