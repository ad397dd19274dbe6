"""Choosing the SM100 kernel's tiles: enumerate the legal configs, score them, keep the losers.

Legal configs respect the machine: the MMA's M side is 128 rows per CTA (256 across a CTA
pair); its N side (``block_n``, or ``block_m`` with swap-AB) is a multiple of 16 up to 256;
two TMEM accumulators of N columns plus the scale-factor columns fit in TMEM's 512 columns;
MN-major tiles are whole 128-byte swizzle atoms; the stage ring fits in shared memory.

Each config gets a predicted time from a small cost model (:func:`estimate_ns`): waves of
tiles over the SMs (a CTA pair takes two SMs per tile), a K block costing the slower of
streaming its operand rows from L2 and running its MMAs, floored by reading the operands
once from HBM. Its figures come from published B200 specifications: it is not calibrated,
since no Blackwell GPU was available when it was written.
"""

from __future__ import annotations

import attrs

from dgreg import ConfigChoice
from dgreg import config as settings
from dgreg_sm100.config import MMA_ROWS, Sm100GemmConfig

settings.register(settings.Knob(
    "DGREG_SM100_CONFIG", "str", None,
    "Force the sm100 kernels' tile config, e.g. 'block_n=256,cluster=2' or "
    "'swap_ab=1,block_m=32', optionally with 'stages=N' (for tuning; the heuristics' choice "
    "otherwise)."))

SMEM_LIMIT = 232448  # bytes of dynamic shared memory per block on B200
SMEM_SPARE = 1024  # the kernel aligns its window to 1024 bytes by hand
TMEM_COLUMNS = 512  # 32-bit columns of tensor memory per SM (128 lanes each)
MAX_STAGES = 16
BLOCK_NS = tuple(range(32, 257, 32))  # the epilogue stores 32 columns of D per step
SWAP_BLOCK_MS = (16, 32, 64)  # rows of A as the MMA's N side
_D_BYTES = {"bf16": 2, "fp32": 4}


def block_k(dtype: str) -> int:
    return 128 if dtype == "fp8" else 64  # 128 bytes of K per tile row either way


def tmem_columns(dtype: str, umma_n: int) -> int:
    """Columns the kernel uses: two accumulators, then (FP8) 4 columns of scale words per
    128 rows of X and of Y."""
    scales = 4 + 4 * -(-umma_n // 128) if dtype == "fp8" else 0
    return 2 * umma_n + scales


def tmem_allocation(columns: int) -> int:
    """``tcgen05.alloc`` takes a power of two from 32 columns."""
    return max(32, 1 << (columns - 1).bit_length())


def stage_bytes(dtype: str, umma_n: int, cluster: int) -> int:
    """One stage: X (128 rows) and this CTA's rows of Y, 128 bytes of K each, plus (FP8) one
    scale word per X row and per Y row (rounded up to 128 rows)."""
    scales = 4 * (MMA_ROWS + -(-umma_n // 128) * 128) if dtype == "fp8" else 0
    return MMA_ROWS * 128 + umma_n // cluster * 128 + scales


def staging_bytes(cfg: Sm100GemmConfig) -> int:
    """The epilogue's swizzled D tiles: 4 warps x 2 buffers x rows x 32 columns (TMA-stored
    groupings only; M-grouped tiles store rows directly)."""
    if cfg.grouping not in ("none", "k_grouped"):
        return 0
    return 4 * 2 * cfg.store_rows * 32 * _D_BYTES[cfg.d_dtype]


def _layout_bytes(cfg: Sm100GemmConfig, stages: int) -> int:
    ring = -(-stages * stage_bytes(cfg.dtype, cfg.umma_n, cfg.cluster) // 1024) * 1024
    return ring + staging_bytes(cfg) + (3 * stages + 4) * 8 + 16


def smem_bytes(cfg: Sm100GemmConfig) -> int:
    """Dynamic shared memory the kernel asks for (its layout plus the alignment slack)."""
    return _layout_bytes(cfg, cfg.stages) + SMEM_SPARE


def stages_for(cfg: Sm100GemmConfig, smem_limit: int = SMEM_LIMIT) -> int:
    """The deepest ring (at most MAX_STAGES) that fits in ``smem_limit``."""
    stages = 0
    while stages < MAX_STAGES and _layout_bytes(cfg, stages + 1) + SMEM_SPARE <= smem_limit:
        stages += 1
    return stages


def legal(cfg: Sm100GemmConfig) -> str | None:
    """Why the kernel cannot be built for ``cfg`` (None: it can)."""
    es = 1 if cfg.dtype == "fp8" else 2
    if cfg.swap_ab:
        if cfg.block_n != MMA_ROWS or cfg.cluster != 1:
            return "swap-AB puts 128 rows of B on the MMA's M side, one CTA per tile"
        if cfg.block_m % 16 or not 16 <= cfg.block_m <= 256:
            return f"swap-AB block_m={cfg.block_m} is not a multiple of 16 up to 256 (MMA N)"
    else:
        if cfg.block_m != MMA_ROWS:
            return f"block_m={cfg.block_m}: the MMA's M side is 128 rows per CTA"
        if cfg.block_n % 32 or not 32 <= cfg.block_n <= 256:
            return f"block_n={cfg.block_n} is not a multiple of 32 up to 256"
    if cfg.cluster == 2 and (cfg.swap_ab or cfg.grouping != "none"):
        return "CTA pairs serve the dense GEMM without swap-AB only"
    y_rows = cfg.umma_n // cfg.cluster
    y_k_major = cfg.a_k_major if cfg.swap_ab else cfg.b_k_major
    if not y_k_major and y_rows * es % 128:
        return (f"an MN-major tile of {y_rows} rows is not a whole number of 128-byte swizzle "
                f"atoms")
    used = tmem_columns(cfg.dtype, cfg.umma_n)
    if used > TMEM_COLUMNS:
        return f"{used} TMEM columns (two accumulators and scales) > {TMEM_COLUMNS}"
    if cfg.grouping == "contiguous" and MMA_ROWS % cfg.tile_m:
        return "an M-grouped tile must stay inside one expert's 128-row block"
    return None


# Cost model. Per-SM tensor throughput from B200's published dense figures (4.5 PFLOPS FP8,
# 2.25 PFLOPS BF16 over 148 SMs) and 8 TB/s of HBM; the L2 rate per SM and the fixed cost
# per tile are estimates. None of it is measured: no Blackwell GPU was at hand.
FLOPS_PER_NS = {"fp8": 30400.0, "bf16": 15200.0}
L2_BYTES_PER_NS = 120.0  # per SM
HBM_BYTES_PER_NS = 8000.0  # whole chip
EPILOGUE_BYTES_PER_NS = 120.0  # per SM, writing D (overlaps the next tile's MMAs)
LAUNCH_FIXED_NS = 2000.0  # pipeline fill of the first tile and the last tile's epilogue
TIE_MARGIN = 1.04


@attrs.frozen
class Shape:
    """What the model needs to know about the problem."""

    m: int  # rows of A (per group when masked)
    n: int
    k: int  # K per group for K-grouped problems (their mean over non-empty groups)
    groups: int = 1
    expected_m: int | None = None  # masked: rows each expert is expected to hold
    k_groups: int = 1  # K-grouped: number of groups with a non-zero K


def useful_area(cfg: Sm100GemmConfig, shape: Shape) -> int:
    """The part of one tile that holds rows and columns of D (masked: the expected rows)."""
    rows = min(shape.expected_m or shape.m, shape.m) if cfg.grouping == "masked" else shape.m
    return min(cfg.tile_m, rows) * min(cfg.block_n, shape.n)


def tiles_of(cfg: Sm100GemmConfig, shape: Shape) -> int:
    """Tiles with work (masked: the rows experts are expected to hold)."""
    n_blocks = -(-shape.n // cfg.block_n)
    if cfg.grouping == "masked":
        rows = min(shape.expected_m or shape.m, shape.m)
        return shape.groups * -(-rows // cfg.tile_m) * n_blocks
    blocks = -(-shape.m // cfg.tile_m) * n_blocks
    return blocks * (shape.k_groups if cfg.grouping == "k_grouped" else 1)


def hbm_bytes(cfg: Sm100GemmConfig, shape: Shape) -> int:
    """Reading A and B once and writing D once."""
    es = 1 if cfg.dtype == "fp8" else 2
    if cfg.grouping == "k_grouped":  # per group: A [k, M], B [k, N]; D [G, M, N] in FP32
        return (shape.m + shape.n) * shape.k * shape.k_groups * es + \
            shape.groups * shape.m * shape.n * _D_BYTES[cfg.d_dtype]
    rows_read = rows_written = shape.m
    if cfg.grouping == "masked":  # whole tiles of A are read, rows past masked_m included
        expected = min(shape.expected_m or shape.m, shape.m)
        rows_written = shape.groups * expected
        rows_read = shape.groups * min(-(-expected // cfg.tile_m) * cfg.tile_m, shape.m)
    b_copies = shape.groups if cfg.grouping in ("contiguous", "masked") else 1
    return (rows_read + b_copies * shape.n) * shape.k * es + \
        rows_written * shape.n * _D_BYTES[cfg.d_dtype]


def estimate_ns(cfg: Sm100GemmConfig, shape: Shape, num_sms: int) -> tuple[float, int, int]:
    """(predicted kernel time in ns, tiles, waves) of one config."""
    tiles = tiles_of(cfg, shape)
    slots = max(1, num_sms // cfg.cluster)
    waves = -(-tiles // slots)
    # Operand rows a CTA streams per K block. Rows past the matrix are zero-filled by the TMA
    # without reading memory; a masked expert's rows past masked_m (below M_max) are read.
    a_rows = min(cfg.block_m, shape.m)
    b_rows = min(cfg.block_n, shape.n) // (1 if cfg.swap_ab else cfg.cluster)
    bk = block_k(cfg.dtype)
    per_kb = max((a_rows + b_rows) * 128 / L2_BYTES_PER_NS,
                 2 * MMA_ROWS * cfg.umma_n * bk / FLOPS_PER_NS[cfg.dtype])
    mainloop = -(-shape.k // bk) * per_kb
    epilogue = cfg.block_m * cfg.block_n * _D_BYTES[cfg.d_dtype] / EPILOGUE_BYTES_PER_NS
    per_tile = max(mainloop, epilogue)
    floor = hbm_bytes(cfg, shape) / HBM_BYTES_PER_NS
    return max(waves * per_tile + LAUNCH_FIXED_NS, floor), tiles, waves


def grid_size(cfg: Sm100GemmConfig, tiles: int, num_sms: int) -> int:
    """CTAs of the persistent grid: one per tile up to the SMs (a pair per tile with CTA
    pairs). Masked tiles are counted on the device only, so those grids take every SM."""
    if cfg.grouping == "masked":
        return num_sms
    return max(1, min(num_sms // cfg.cluster, tiles)) * cfg.cluster


def _candidates(dtype: str, layout: str, grouping: str, d_dtype: str, shape: Shape,
                num_sms: int) -> list[Sm100GemmConfig]:
    def make(block_m: int, block_n: int, swap: bool, cluster: int) -> Sm100GemmConfig:
        return Sm100GemmConfig(dtype, layout, grouping, d_dtype, block_m, block_n, swap,
                               cluster, stages=1, num_sms=num_sms)

    out = [make(MMA_ROWS, bn, False, c) for c in (1, 2) for bn in BLOCK_NS]
    if grouping != "k_grouped":
        out += [make(bm, MMA_ROWS, True, 1) for bm in SWAP_BLOCK_MS]
    # A pair covers two 128-row blocks: with an odd count one CTA of the last pair would idle.
    pairs = num_sms % 2 == 0 and -(-shape.m // MMA_ROWS) % 2 == 0
    return [c for c in out if (c.cluster == 1 or pairs) and legal(c) is None]


def forced(text: str, base: Sm100GemmConfig, smem_limit: int) -> Sm100GemmConfig:
    """The config ``DGREG_SM100_CONFIG`` asks for, on top of ``base``'s dtype and layout."""
    fields: dict[str, int] = {}
    for part in text.split(","):
        name, _, value = part.partition("=")
        name = name.strip()
        if name not in ("block_m", "block_n", "swap_ab", "cluster", "stages") or \
                not value.strip().isdigit():
            raise ValueError(f"DGREG_SM100_CONFIG must look like 'block_n=256,cluster=2,stages=6' "
                             f"or 'swap_ab=1,block_m=32' (got {text!r})")
        fields[name] = int(value)
    swap = bool(fields.get("swap_ab", 0))
    cfg = attrs.evolve(base, block_m=fields.get("block_m", base.block_m),
                       block_n=fields.get("block_n", MMA_ROWS if swap else base.block_n),
                       swap_ab=swap, cluster=fields.get("cluster", 1))
    problem = legal(cfg)
    stages = fields.get("stages") or stages_for(cfg, smem_limit)
    too_big = smem_bytes(attrs.evolve(cfg, stages=stages)) > smem_limit
    if problem is None and (stages < 2 or too_big):
        problem = f"stages={stages} do not fit in {smem_limit} bytes of shared memory"
    if problem is not None:
        raise ValueError(f"DGREG_SM100_CONFIG={text!r} is not a legal SM100 config: {problem}")
    return attrs.evolve(cfg, stages=stages)


def choose(dtype: str, layout: str, grouping: str, d_dtype: str, shape: Shape, num_sms: int,
           smem_limit: int = SMEM_LIMIT) -> ConfigChoice:
    """The best config for ``shape`` on ``num_sms`` SMs, with the runners-up for ``explain``."""
    if num_sms < 1:
        raise ValueError(f"num_sms must be positive (got {num_sms})")
    override = settings.get("DGREG_SM100_CONFIG")
    scored = []
    if override:
        base = Sm100GemmConfig(dtype, layout, grouping, d_dtype, MMA_ROWS, MMA_ROWS, False, 1, 1,
                               num_sms)
        cfg = forced(override, base, smem_limit)
        ns, tiles, waves = estimate_ns(cfg, shape, num_sms)
        scored.append((ns, tiles, waves, attrs.evolve(cfg, num_sms=grid_size(cfg, tiles, num_sms))))
    else:
        for cfg in _candidates(dtype, layout, grouping, d_dtype, shape, num_sms):
            stages = stages_for(cfg, smem_limit)
            if stages < 2:
                continue
            ns, tiles, waves = estimate_ns(cfg, shape, num_sms)
            scored.append((ns, tiles, waves, attrs.evolve(cfg, stages=stages,
                                                          num_sms=grid_size(cfg, tiles, num_sms))))
    if not scored:
        raise ValueError(f"no SM100 {dtype} config fits {shape!r} in {smem_limit} bytes of "
                         f"shared memory")

    def rank(item: tuple) -> tuple:
        ns, _, _, cfg = item
        return (ns, -cfg.cluster, -cfg.block_m * cfg.block_n, cfg.swap_ab, cfg.block_n)

    scored.sort(key=rank)
    # The model cannot tell configs a few percent apart; among those, a CTA pair halves each
    # SM's share of B, a tile holding more of D moves fewer bytes per FLOP, and of tiles
    # holding the same part of D the smaller one wastes less of the tensor core.
    best_ns = scored[0][0]
    near = [s for s in scored if s[0] <= best_ns * TIE_MARGIN]
    pick = min(near, key=lambda s: (-s[3].cluster, -useful_area(s[3], shape),
                                    s[3].tile_m * s[3].block_n, s[0]))
    scored.remove(pick)
    scored.insert(0, pick)
    ns, tiles, waves, best = pick
    slots = max(1, num_sms // best.cluster)
    last_wave = (tiles - (waves - 1) * slots) / slots if tiles else 0.0
    used = tmem_columns(best.dtype, best.umma_n)
    figures = {
        "predicted_us": round(ns / 1e3, 2),
        "cost_model": "B200 datasheet figures, not calibrated on hardware",
        "tiles": tiles,
        "waves": waves,
        "last_wave_sm_utilisation": round(last_wave, 3),
        "swap_ab": best.swap_ab,
        "cluster": best.cluster,
        "tmem_columns": f"{used} used of {tmem_allocation(used)} allocated (limit {TMEM_COLUMNS})",
        "stages": best.stages,
        "smem_bytes": smem_bytes(best),
        "threads": best.threads,
    }
    if override:
        figures["forced_by"] = "DGREG_SM100_CONFIG"
    alternatives = tuple(
        (cfg, ns_ / 1e3, f"predicted {ns_ / 1e3:.1f} us, {tiles_} tiles, {waves_} wave(s)")
        for ns_, tiles_, waves_, cfg in scored[1:9])
    return ConfigChoice(best, figures, alternatives)
