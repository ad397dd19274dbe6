"""Choosing tile sizes for the SM90 FP8 kernel: enumerate, score, keep the losers.

Every (block_m, block_n, split_k) candidate gets a predicted time from a small cost model
(:func:`estimate_ns`): waves of work units times the time of one unit, where a K block costs
the slower of streaming its A and B tiles from L2 and running its MMAs, floored by reading
the operands once from HBM. Unaligned ``block_n`` (112, 144, ...) often fill more SMs than
powers of two; split-K fills them when M is small.
"""

from __future__ import annotations

import attrs

from dgreg import ConfigChoice
from dgreg import config as settings
from dgreg_sm90.config import Sm90GemmConfig

settings.register(settings.Knob(
    "DGREG_SM90_CONFIG", "str", None,
    "Force the sm90 FP8 kernel's tile config, e.g. 'block_m=128,block_n=192,stages=5' "
    "(for tuning and benchmarks; the heuristics' choice otherwise)."))


SMEM_LIMIT = 232448  # bytes of dynamic shared memory per block on H100/H200
SMEM_SPARE = 1024  # the kernel aligns its window to 1024 bytes by hand
MAX_STAGES = 8
# accumulator registers per thread: partial (block_n / 2) + one FP32 total per 64-row sub-tile
MAX_ACC_REGS = 192
BLOCK_MS = (64, 128, 256)
BLOCK_NS = tuple(range(16, 193, 8))
BLOCK_NS_BF16 = tuple(range(16, 257, 8))


def stage_bytes(block_m: int, block_n: int) -> int:
    """A and B tiles (128 bytes of K per row either dtype) and the FP8 A scales."""
    return block_m * 128 + block_n * 128 + block_m * 4


def epilogue_bytes(block_m: int, block_n: int, grouped: bool = False) -> int:
    """The BF16 output tile: dense for the TMA store (block_n % 64 == 0, not grouped), else rows
    padded by 16 bytes; plus up to 1 KiB of alignment before it."""
    dense = block_n % 64 == 0 and not grouped
    return block_m * (block_n * 2 + (0 if dense else 16)) + 1024


def smem_bytes(block_m: int, block_n: int, stages: int, grouped: bool = False) -> int:
    """Dynamic shared memory the kernel asks for (covers the kernel's layout)."""
    return stages * (stage_bytes(block_m, block_n) + 16) + \
        epilogue_bytes(block_m, block_n, grouped) + SMEM_SPARE + 16


def block_k(dtype: str) -> int:
    return 128 if dtype == "fp8" else 64  # 128 bytes of K either way


def stages_for(block_m: int, block_n: int, k: int, smem_limit: int = SMEM_LIMIT,
               dtype: str = "fp8", grouped: bool = False) -> int:
    budget = smem_limit - SMEM_SPARE - 16 - epilogue_bytes(block_m, block_n, grouped)
    fit = budget // (stage_bytes(block_m, block_n) + 16)
    k_blocks = max(1, -(-k // block_k(dtype)))
    return max(0, min(MAX_STAGES, fit, max(2, k_blocks)))


def legal(block_m: int, block_n: int, split_k: int = 1, dtype: str = "fp8") -> str | None:
    m_sub = 2 if block_m == 256 else 1
    if dtype == "bf16":  # no partial accumulator: the wgmma accumulates into the totals
        regs = m_sub * block_n // 2
        limit = MAX_ACC_REGS - 16 if split_k > 1 else MAX_ACC_REGS
        return None if regs <= limit else f"{regs} accumulator registers per thread > {limit}"
    regs = (m_sub + 1) * block_n // 2
    # Measured with nvcc 13.0 (tests/test_sm90_sass.py checks every picked config): the
    # split-K reduction needs a few registers of its own, and block_m 64 with block_n 192
    # spills since B scales may come from three 128-wide blocks.
    limit = MAX_ACC_REGS - 16 if split_k > 1 else (MAX_ACC_REGS - 8 if block_m == 64 else
                                                   MAX_ACC_REGS)
    if regs > limit:
        return f"{regs} accumulator registers per thread > {limit}"
    return None


def forced(text: str, m: int, n: int, k: int, num_sms: int, smem_limit: int,
           dtype: str = "fp8", grouped: bool = False) -> ConfigChoice:
    """The config ``DGREG_SM90_CONFIG`` asks for (``block_m=128,block_n=192[,stages=5]``)."""
    fields = {}
    for part in text.split(","):
        name, _, value = part.partition("=")
        if name.strip() not in ("block_m", "block_n", "stages", "split_k") or \
                not value.strip().isdigit():
            raise ValueError(f"DGREG_SM90_CONFIG must look like 'block_m=128,block_n=192,stages=5' "
                             f"(got {text!r})")
        fields[name.strip()] = int(value)
    block_m, block_n = fields.get("block_m", 128), fields.get("block_n", 128)
    split = fields.get("split_k", 1)
    problem = legal(block_m, block_n, split, dtype)
    if grouped and (block_m > 128 or split > 1):
        problem = "M-grouped kernels take block_m 64 or 128 and no split-K"
    if block_m not in BLOCK_MS or block_n % 8 or not 8 <= block_n <= 256 or split < 1 or problem:
        raise ValueError(f"DGREG_SM90_CONFIG: block_m={block_m}, block_n={block_n}, "
                         f"split_k={split} is not a legal SM90 FP8 config "
                         f"({problem or 'see heuristics.BLOCK_MS'})")
    stages = fields.get("stages") or stages_for(block_m, block_n, k, smem_limit, dtype, grouped)
    units = -(-m // block_m) * -(-n // block_n) * split
    return ConfigChoice(Sm90GemmConfig(block_m, block_n, stages, min(num_sms, units), split,
                                       dtype, grouped),
                        {"forced_by": "DGREG_SM90_CONFIG", "work_units": units})


# Cost model (calibrated on an H200, see benchmarks/NOTES.md): a CTA streams A and B tiles
# from L2 at about L2_BYTES_PER_NS and runs the tensor core at about FLOPS_PER_NS; a K block
# costs the slower of the two. HBM bounds the whole problem from below.
L2_BYTES_PER_NS = 75.0  # per SM
FLOPS_PER_NS = 9850.0  # per SM, FP8 dense
FLOPS_PER_NS_BF16 = 5970.0  # per SM, BF16 dense (788 TFLOPS measured on an H200 / 132)
HBM_BYTES_PER_NS = 4300.0  # whole chip
UNIT_FIXED_NS = 3000.0  # pipeline fill and epilogue latency of one work unit
SPLIT_FIXED_NS = 2000.0  # workspace round trip, fence and counter of a split unit
SPLITS = (1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 14, 16)
TIE_MARGIN = 1.04


def estimate_ns(m: int, n: int, k: int, num_sms: int, block_m: int, block_n: int,
                split: int, dtype: str = "fp8") -> tuple[float, int, int]:
    """(predicted kernel time in ns, work units, waves) of one config."""
    bk = block_k(dtype)
    k_blocks = max(1, -(-k // bk))
    tiles = -(-m // block_m) * -(-n // block_n)
    units = tiles * split
    waves = -(-units // num_sms)
    # With one 64-row sub-tile per warpgroup the promotion FFMAs stall the tensor core more
    # than with two, whose wgmma and promotion interleave (measured: 0.76 vs 0.95).
    # BF16 has no promotion at all.
    mma_efficiency = 0.95 if block_m == 256 or dtype == "bf16" else 0.76
    flops = FLOPS_PER_NS if dtype == "fp8" else FLOPS_PER_NS_BF16
    per_k_block = max((block_m + block_n) * 128 / L2_BYTES_PER_NS,
                      2 * block_m * block_n * bk / (flops * mma_efficiency))
    epilogue = block_m * block_n * 2 / L2_BYTES_PER_NS
    if split > 1:  # write the FP32 partial; the last unit reads the others back
        epilogue += split * block_m * block_n * 4 / L2_BYTES_PER_NS
    unit = -(-k_blocks // split) * per_k_block + epilogue + UNIT_FIXED_NS
    if split > 1:
        unit += SPLIT_FIXED_NS
    elem = 1 if dtype == "fp8" else 2
    floor = ((m * k + n * k) * elem + 2 * m * n) / HBM_BYTES_PER_NS
    return max(waves * unit, floor), units, waves


def choose(m: int, n: int, k: int, num_sms: int, smem_limit: int = SMEM_LIMIT,
           dtype: str = "fp8", grouped: bool = False, masked: bool = False) -> ConfigChoice:
    """The best config for an ``m x n x k`` problem on ``num_sms`` SMs, with the runners-up.

    For the masked kernel ``m`` is the rows expected over all experts (G x expected_m).

    Candidates are scored by :func:`estimate_ns`; split-K is considered only when the tiles
    alone leave SMs idle, with at least 2 K blocks per unit.
    """
    if num_sms < 1:
        raise ValueError(f"num_sms must be positive (got {num_sms})")
    override = settings.get("DGREG_SM90_CONFIG")
    grouped = grouped or masked
    if override:
        choice = forced(override, m, n, k, num_sms, smem_limit, dtype, grouped)
        return attrs.evolve(choice, config=attrs.evolve(choice.config, masked=masked))
    k_blocks = max(1, -(-k // block_k(dtype)))
    scored = []
    # M-grouped tiles must stay inside one expert's 128-row blocks, and are not split
    for block_m in (64, 128) if grouped else BLOCK_MS:
        if block_m > 64 and m <= block_m // 2:
            continue  # a smaller block_m covers m with less waste
        for block_n in BLOCK_NS if dtype == "fp8" else BLOCK_NS_BF16:
            if legal(block_m, block_n, 1, dtype):
                continue
            stages = stages_for(block_m, block_n, k, smem_limit, dtype, grouped)
            if stages < 2:
                continue
            tiles = -(-m // block_m) * -(-n // block_n)
            for split in SPLITS:
                if split > 1 and (grouped or tiles * split > num_sms or 2 * split > k_blocks):
                    break
                if legal(block_m, block_n, split, dtype):
                    continue
                ns, units, waves = estimate_ns(m, n, k, num_sms, block_m, block_n, split, dtype)
                # masked: the real tile count is only known on the device, use every SM
                grid = num_sms if masked else min(num_sms, units)
                config = Sm90GemmConfig(block_m, block_n, stages, grid, split, dtype, grouped,
                                        masked)
                scored.append(((ns, waves, -block_n, block_m, split), config, units, waves, ns))
    if not scored:
        raise ValueError(f"no SM90 FP8 config fits m={m} n={n} k={k}")
    scored.sort(key=lambda item: item[0])
    # The model cannot tell candidates within a few percent apart; among those, the largest
    # tile moves the fewest bytes per FLOP, which held up best in measurements.
    near = [s for s in scored if s[4] <= scored[0][4] * TIE_MARGIN]
    pick = max(near, key=lambda s: (s[1].block_m * s[1].block_n, -s[4]))
    scored.remove(pick)
    scored.insert(0, pick)
    _, best, units, waves, ns = scored[0]
    figures = {
        "predicted_us": round(ns / 1e3, 2),
        "work_units": units,
        "waves": waves,
        "last_wave_sm_utilisation": round((units - (waves - 1) * num_sms) / num_sms, 3),
        "smem_bytes": smem_bytes(best.block_m, best.block_n, best.stages, best.grouped),
        "threads": best.threads,
    }
    alternatives = tuple(
        (cfg, ns_ / 1e3, f"predicted {ns_ / 1e3:.1f} us, {units_} units, {waves_} wave(s)")
        for _, cfg, units_, waves_, ns_ in scored[1:9])
    return ConfigChoice(best, figures, alternatives)
