"""Choosing tile sizes for the SM90 FP8 kernel: enumerate, score, keep the losers.

The score follows the wave model: a persistent grid of ``num_sms`` CTAs runs
``ceil(tiles / num_sms)`` waves; fewer waves win, then a fuller last wave (SMs busy in the
last wave / SMs), then the larger ``block_n`` (less re-reading of A), then the smaller
``block_m``. Unaligned ``block_n`` (112, 144, ...) often fill more SMs than powers of two.
"""

from __future__ import annotations

from dgreg import ConfigChoice

from dgreg_sm90.config import Sm90Fp8Config

BLOCK_K = 128
SMEM_LIMIT = 232448  # bytes of dynamic shared memory per block on H100/H200
SMEM_SPARE = 1024  # the kernel aligns its window to 1024 bytes by hand
MAX_STAGES = 8
# accumulator registers per thread: partial (block_n / 2) + one FP32 total per 64-row sub-tile
MAX_ACC_REGS = 168
BLOCK_MS = (64, 128, 256)
BLOCK_NS = tuple(range(16, 161, 8))


def stage_bytes(block_m: int, block_n: int) -> int:
    return block_m * BLOCK_K + block_n * BLOCK_K + block_m * 4


def stages_for(block_m: int, block_n: int, k: int, smem_limit: int = SMEM_LIMIT) -> int:
    budget = smem_limit - SMEM_SPARE
    fit = budget // (stage_bytes(block_m, block_n) + 16)
    k_blocks = max(1, -(-k // BLOCK_K))
    return max(0, min(MAX_STAGES, fit, max(2, k_blocks)))


def legal(block_m: int, block_n: int) -> str | None:
    m_sub = 2 if block_m == 256 else 1
    regs = (m_sub + 1) * block_n // 2
    if regs > MAX_ACC_REGS:
        return f"{regs} accumulator registers per thread > {MAX_ACC_REGS}"
    return None


def choose(m: int, n: int, k: int, num_sms: int, smem_limit: int = SMEM_LIMIT) -> ConfigChoice:
    """The best config for an ``m x n x k`` problem on ``num_sms`` SMs, with the runners-up."""
    if num_sms < 1:
        raise ValueError(f"num_sms must be positive (got {num_sms})")
    scored = []
    for block_m in BLOCK_MS:
        if block_m > 64 and m <= block_m // 2:
            continue  # a smaller block_m covers m with less waste
        for block_n in BLOCK_NS:
            if legal(block_m, block_n):
                continue
            stages = stages_for(block_m, block_n, k, smem_limit)
            if stages < 2:
                continue
            tiles = -(-m // block_m) * -(-n // block_n)
            waves = -(-tiles // num_sms)
            last = tiles - (waves - 1) * num_sms
            util = last / num_sms
            key = (waves, -util, -block_n, block_m)
            config = Sm90Fp8Config(block_m, block_n, stages, min(num_sms, tiles))
            scored.append((key, config, tiles, waves, util))
    if not scored:
        raise ValueError(f"no SM90 FP8 config fits m={m} n={n} k={k}")
    scored.sort(key=lambda item: item[0])
    _, best, tiles, waves, util = scored[0]
    figures = {
        "tiles": tiles,
        "waves": waves,
        "last_wave_sm_utilisation": round(util, 3),
        "smem_bytes": best.stages * (stage_bytes(best.block_m, best.block_n) + 16) + SMEM_SPARE,
        "threads": best.threads,
    }
    alternatives = tuple(
        (cfg, waves_ + (1 - util_), f"{tiles_} tiles, {waves_} wave(s), last wave {util_:.0%}")
        for _, cfg, tiles_, waves_, util_ in scored[1:9])
    return ConfigChoice(best, figures, alternatives)
