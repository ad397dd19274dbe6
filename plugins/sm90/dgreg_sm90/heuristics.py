"""Choosing tile sizes for the SM90 FP8 kernel: enumerate, score, keep the losers.

The score follows the wave model: a persistent grid of ``num_sms`` CTAs runs
``ceil(tiles / num_sms)`` waves; fewer waves win, then a fuller last wave (SMs busy in the
last wave / SMs), then the larger ``block_n`` (less re-reading of A), then the smaller
``block_m``. Unaligned ``block_n`` (112, 144, ...) often fill more SMs than powers of two.
"""

from __future__ import annotations

from dgreg import ConfigChoice
from dgreg import config as settings
from dgreg_sm90.config import Sm90Fp8Config

settings.register(settings.Knob(
    "DGREG_SM90_CONFIG", "str", None,
    "Force the sm90 FP8 kernel's tile config, e.g. 'block_m=128,block_n=192,stages=5' "
    "(for tuning and benchmarks; the heuristics' choice otherwise)."))

BLOCK_K = 128
SMEM_LIMIT = 232448  # bytes of dynamic shared memory per block on H100/H200
SMEM_SPARE = 1024  # the kernel aligns its window to 1024 bytes by hand
MAX_STAGES = 8
# accumulator registers per thread: partial (block_n / 2) + one FP32 total per 64-row sub-tile
MAX_ACC_REGS = 192
BLOCK_MS = (64, 128, 256)
BLOCK_NS = tuple(range(16, 193, 8))


def stage_bytes(block_m: int, block_n: int) -> int:
    return block_m * BLOCK_K + block_n * BLOCK_K + block_m * 4


def epilogue_bytes(block_m: int, block_n: int) -> int:
    return block_m * (block_n * 2 + 16)  # the BF16 output tile, rows padded by 16 bytes


def smem_bytes(block_m: int, block_n: int, stages: int) -> int:
    """Dynamic shared memory the kernel asks for (must match the kernel's layout)."""
    return stages * (stage_bytes(block_m, block_n) + 16) + epilogue_bytes(block_m, block_n) + \
        SMEM_SPARE


def stages_for(block_m: int, block_n: int, k: int, smem_limit: int = SMEM_LIMIT) -> int:
    budget = smem_limit - SMEM_SPARE - epilogue_bytes(block_m, block_n)
    fit = budget // (stage_bytes(block_m, block_n) + 16)
    k_blocks = max(1, -(-k // BLOCK_K))
    return max(0, min(MAX_STAGES, fit, max(2, k_blocks)))


def legal(block_m: int, block_n: int) -> str | None:
    m_sub = 2 if block_m == 256 else 1
    regs = (m_sub + 1) * block_n // 2
    if regs > MAX_ACC_REGS:
        return f"{regs} accumulator registers per thread > {MAX_ACC_REGS}"
    return None


def forced(text: str, m: int, n: int, k: int, num_sms: int, smem_limit: int) -> ConfigChoice:
    """The config ``DGREG_SM90_CONFIG`` asks for (``block_m=128,block_n=192[,stages=5]``)."""
    fields = {}
    for part in text.split(","):
        name, _, value = part.partition("=")
        if name.strip() not in ("block_m", "block_n", "stages") or not value.strip().isdigit():
            raise ValueError(f"DGREG_SM90_CONFIG must look like 'block_m=128,block_n=192,stages=5' "
                             f"(got {text!r})")
        fields[name.strip()] = int(value)
    block_m, block_n = fields.get("block_m", 128), fields.get("block_n", 128)
    if block_m not in BLOCK_MS or block_n % 8 or not 8 <= block_n <= 256 or legal(block_m, block_n):
        raise ValueError(f"DGREG_SM90_CONFIG: block_m={block_m}, block_n={block_n} is not a legal "
                         f"SM90 FP8 tile ({legal(block_m, block_n) or 'see heuristics.BLOCK_MS'})")
    stages = fields.get("stages") or stages_for(block_m, block_n, k, smem_limit)
    tiles = -(-m // block_m) * -(-n // block_n)
    return ConfigChoice(Sm90Fp8Config(block_m, block_n, stages, min(num_sms, tiles)),
                        {"forced_by": "DGREG_SM90_CONFIG", "tiles": tiles})


def choose(m: int, n: int, k: int, num_sms: int, smem_limit: int = SMEM_LIMIT) -> ConfigChoice:
    """The best config for an ``m x n x k`` problem on ``num_sms`` SMs, with the runners-up."""
    if num_sms < 1:
        raise ValueError(f"num_sms must be positive (got {num_sms})")
    override = settings.get("DGREG_SM90_CONFIG")
    if override:
        return forced(override, m, n, k, num_sms, smem_limit)
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
        "smem_bytes": smem_bytes(best.block_m, best.block_n, best.stages),
        "threads": best.threads,
    }
    alternatives = tuple(
        (cfg, waves_ + (1 - util_), f"{tiles_} tiles, {waves_} wave(s), last wave {util_:.0%}")
        for _, cfg, tiles_, waves_, util_ in scored[1:9])
    return ConfigChoice(best, figures, alternatives)
