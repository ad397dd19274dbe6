"""Running SASS passes, and checking that each changed only what it said it would.

A pass returns a :class:`PassResult`: the new cubin and, for every instruction it touched,
the control fields it changed. The framework (not the pass) then checks that

1. the file has the same size and only declared instructions' bytes differ;
2. a declared instruction's low word is unchanged and its high word differs only in the
   declared fields;
3. re-disassembled, every instruction reads the same, declared ones up to their ``.reuse``
   marks (the only text a control-bit change may alter).

Anything else raises :class:`SassPassError` and the binary is not used.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs

from dgreg import config
from dgreg.errors import DgregError
from dgreg.sass import control
from dgreg.sass.cubin import INSTRUCTION_BYTES, Cubin
from dgreg.sass.inspect import disassemble, listing

__all__ = ["PassResult", "SassPassError", "run_passes", "select"]

class SassPassError(DgregError):
    """A SASS pass changed something it did not declare."""


@attrs.frozen
class PassResult:
    cubin: bytes = attrs.field(repr=lambda b: f"<{len(b)} bytes>")
    #: (kernel, instruction offset in its .text section) -> control fields changed there
    changed: Mapping[tuple[str, int], frozenset[str]] = attrs.field(factory=dict)
    stats: Mapping[str, Any] = attrs.field(factory=dict)


def select(passes: Iterable[Any], arch: str, compiler: str) -> list[Any]:
    """The passes that apply to ``arch`` / ``compiler`` and are switched on."""
    tokens = config.get("DGREG_SASS_PASSES")
    chosen = []
    for sass_pass in passes:
        if sass_pass.applies is not None and not sass_pass.applies(arch, compiler):
            continue
        enabled = sass_pass.default
        if tokens is not None:
            if "none" in tokens:
                enabled = False
            if sass_pass.name in tokens:
                enabled = True
            if f"-{sass_pass.name}" in tokens:
                enabled = False
        if enabled:
            chosen.append(sass_pass)
    return chosen


def _normalise(text: str) -> str:
    return re.sub(r"\.reuse\b", "", re.sub(r"\s+", " ", text)).strip()


def verify(before: bytes, result: PassResult, name: str) -> None:
    after = result.cubin
    if len(after) != len(before):
        raise SassPassError(f"pass {name} changed the cubin's size")
    old, new = Cubin(before), Cubin(after)
    allowed: dict[int, tuple[str, int]] = {}
    for kernel, offset in result.changed:
        base = old.text(kernel).offset + offset
        for i in range(INSTRUCTION_BYTES):
            allowed[base + i] = (kernel, offset)
    for index, (x, y) in enumerate(zip(before, after, strict=True)):
        if x != y and index not in allowed:
            raise SassPassError(f"pass {name} changed byte {index:#x}, outside the instructions "
                                f"it declared")
    kernels = {kernel for kernel, _ in result.changed}  # decode each kernel once, not per change
    old_words = {kernel: old.instructions(kernel) for kernel in kernels}
    new_words = {kernel: new.instructions(kernel) for kernel in kernels}
    for (kernel, offset), fields in result.changed.items():
        a = old_words[kernel][offset // INSTRUCTION_BYTES]
        b = new_words[kernel][offset // INSTRUCTION_BYTES]
        if a.low != b.low:
            raise SassPassError(f"pass {name} changed the low word of {kernel}+{offset:#x}")
        extra = control.differing(a.high, b.high) - set(fields)
        if extra:
            raise SassPassError(f"pass {name} changed undeclared fields {sorted(extra)} of "
                                f"{kernel}+{offset:#x}")
    old_lines, new_lines = listing(disassemble(before)), listing(disassemble(after))
    if old_lines.keys() != new_lines.keys():
        raise SassPassError(f"pass {name} changed the set of kernels")
    for kernel, lines in old_lines.items():
        other = new_lines[kernel]
        if len(lines) != len(other):
            raise SassPassError(f"pass {name} changed the length of {kernel}")
        for x, y in zip(lines, other, strict=True):
            declared = (kernel, x.offset) in result.changed
            same = _normalise(x.text) == _normalise(y.text) if declared else x.text == y.text
            if not same or x.low != y.low:
                raise SassPassError(f"pass {name}: {kernel}+{x.offset:#x} disassembles as "
                                    f"{y.text!r} (was {x.text!r})")


def run_passes(cubin: bytes, passes: Sequence[Any]) -> tuple[bytes, list[dict[str, Any]]]:
    """Apply ``passes`` in order, verifying each; returns the cubin and a record per pass."""
    records = []
    for sass_pass in passes:
        result = sass_pass.apply(cubin)
        if not isinstance(result, PassResult):
            raise SassPassError(f"pass {sass_pass.name} must return a PassResult "
                                f"(got {type(result).__name__})")
        if result.cubin != cubin or result.changed:
            verify(cubin, result, sass_pass.name)
        cubin = result.cubin
        record = {"pass": f"{sass_pass.name}@{sass_pass.version}",
                  "changed": len(result.changed), **result.stats}
        records.append(record)
        if config.get("DGREG_SASS_DEBUG"):
            print(f"dgreg sass: {record}", file=sys.stderr)
    return cubin, records
