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

__all__ = ["SassLine", "SassSummary", "disassemble", "listing", "summarize"]

_OPCODE = re.compile(r"/\*[0-9a-f]{4,}\*/\s+(?:@!?U?P\w+\s+)?([A-Z][A-Z0-9_]*(?:\.[A-Z0-9_]+)*)")
_LINE = re.compile(r"^\s*/\*([0-9a-f]{4,})\*/\s+(.*?)\s*;?\s*/\*\s*0x([0-9a-f]{16})\s*\*/")
_FUNCTION = re.compile(r"^\s*Function : (\S+)")


@attrs.frozen
class SassLine:
    """One disassembled instruction: its text and the low word cuobjdump printed for it."""

    offset: int
    text: str  # "[@P0] OPCODE operands", without the trailing ';'
    low: int

    @property
    def opcode(self) -> str:
        words = self.text.split()
        return words[1] if words and words[0].startswith("@") else (words[0] if words else "")

    @property
    def operands(self) -> list[str]:
        rest = self.text.split(None, 2 if self.text.startswith("@") else 1)
        tail = rest[-1] if len(rest) > (2 if self.text.startswith("@") else 1) else ""
        return [op.strip() for op in tail.split(",") if op.strip()]


def listing(sass: str) -> dict[str, list[SassLine]]:
    """Instructions per kernel (the mangled name cuobjdump prints after ``Function :``)."""
    out: dict[str, list[SassLine]] = {}
    current: list[SassLine] | None = None
    for line in sass.splitlines():
        function = _FUNCTION.match(line)
        if function:
            current = out.setdefault(function.group(1), [])
            continue
        match = _LINE.match(line)
        if match and current is not None:
            text = match.group(2).rstrip(" ;")
            current.append(SassLine(int(match.group(1), 16), text, int(match.group(3), 16)))
    return out


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
