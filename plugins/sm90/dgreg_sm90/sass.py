"""SASS passes of the sm90 plugin.

``ffma_interleave`` re-creates, on our own binaries, what DeepGEMM v1 did to its FP8 kernels
for nvcc <= 12.8: in runs of 8 or more consecutive FFMAs (the promotion of the wgmma partial
sums), over the first 9/16 of each run, an FFMA whose shared multiplier operand is marked for
the reuse cache gets its yield hint set and that reuse flag cleared when the register first
appears in the run, or when the FFMA before it kept reuse on the same register. The shared
operand is the b operand, as in DeepGEMM, or the a operand when ptxas put the shared register
there (multiplication commutes, and ptxas picks the order); the choice is made once per run. The effect is alternating
yield / no-reuse FFMAs, which lets the warp scheduler interleave other warps' wgmma issue.

Applying it twice changes nothing the second time: the flags it reads are the ones it leaves.
"""

from __future__ import annotations

import re

from dgreg import SassPass
from dgreg.sass import control
from dgreg.sass.cubin import Cubin
from dgreg.sass.inspect import disassemble, listing
from dgreg.sass.passes import PassResult

__all__ = ["FFMA_INTERLEAVE", "interleave_ffma"]

MIN_RUN = 8
_REGISTER = re.compile(r"-?\|?(R\d+)")


def _register(operand: str) -> str | None:
    match = _REGISTER.match(operand.strip())
    return match.group(1) if match else None


def _shared_operand(run: list) -> tuple[int, str]:
    """Which multiplier operand of the run is the shared one: (operand index, reuse field).

    Decided from register names only (the position with fewer distinct registers), never
    from the reuse bits the pass itself changes: that keeps a second application a no-op.
    """
    def distinct(index: int) -> int:
        return len({line.operands[index].replace(".reuse", "") for line in run
                    if len(line.operands) > index})

    return (1, "reuse_a") if distinct(1) < distinct(2) else (2, "reuse_b")


def _runs(lines: list) -> list[list]:
    runs, current = [], []
    for line in lines:
        if line.opcode.split(".")[0] == "FFMA" and not line.text.startswith("@"):
            current.append(line)
            continue
        if len(current) >= MIN_RUN:
            runs.append(current)
        current = []
    if len(current) >= MIN_RUN:
        runs.append(current)
    return runs


def interleave_ffma(cubin: bytes) -> PassResult:
    image = Cubin(cubin)
    by_kernel = listing(disassemble(cubin))
    changed: dict[tuple[str, int], frozenset[str]] = {}
    runs_seen = considered = kept = 0
    patched = cubin
    for kernel in image.kernels():
        words = image.instructions(kernel)
        new_highs: dict[int, int] = {}
        for run in _runs(by_kernel.get(kernel, [])):
            runs_seen += 1
            seen: set[str] = set()
            last_kept, last_register = False, None
            index, field = _shared_operand(run)
            for line in run[: len(run) * 9 // 16]:
                considered += 1
                high = words[line.offset // 16].high
                register = _register(line.operands[index]) if len(line.operands) > 2 else None
                reused = bool(control.get(high, field))
                if reused and register is not None and control.get(high, "yield") == 1 and (
                        register not in seen or (last_kept and register == last_register)):
                    new_highs[line.offset] = control.replace(high, **{field: 0, "yield": 0})
                    changed[(kernel, line.offset)] = frozenset({field, "yield"})
                    reused = False
                elif reused:
                    kept += 1
                if register is not None:
                    seen.add(register)
                last_kept, last_register = reused, register
        if new_highs:
            patched = Cubin(patched).patched(kernel, new_highs)
    stats = {"ffma_runs": runs_seen, "ffma_considered": considered,
             "ffma_changed": len(changed), "ffma_kept_reuse": kept}
    return PassResult(patched, changed, stats)


FFMA_INTERLEAVE = SassPass(
    "ffma_interleave", 1, interleave_ffma,
    applies=lambda arch, compiler: arch == "sm_90a",
    # Off by default: nvcc 13.0 already interleaves the promotion FFMAs of our kernels, where
    # the pass changes nothing (benchmarks/results/2026-11-21-h200-sass.md).
    default=False)
