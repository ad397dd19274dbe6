"""Choosing tile sizes for the SM90 FP8 kernel: enumerate, score, keep the losers.

Every (block_m, block_n, split_k) candidate gets a predicted time from a small cost model
(:func:`estimate_ns`): waves of work units times the time of one unit, where a K block costs
the slower of streaming its A and B tiles from L2 and running its MMAs, floored by reading
the operands once from HBM. Unaligned ``block_n`` (112, 144, ...) often fill more SMs than
powers of two; split-K fills them when M is small.
"""

from __future__ import annotations

import math

import attrs

from dgreg import ConfigChoice
from dgreg import config as settings
from dgreg_sm90.config import Sm90GemmConfig, split_firsts

settings.register(settings.Knob(
    "DGREG_SM90_CONFIG", "str", None,
    "Force the sm90 kernels' tile config, e.g. 'block_m=128,block_n=192,stages=5' (optional "
    "split_k=N, inflight=0|1, kpair=0|1, multicast=a|b|0, sms=N: CTAs of the persistent grid); "
    "'multicast=0|a|b' alone keeps the heuristics' choice with that multicast (for tuning and "
    "benchmarks; the heuristics' choice otherwise)."))


SMEM_LIMIT = 232448  # bytes of dynamic shared memory per block on H100/H200
SMEM_SPARE = 1024  # the kernel aligns its window to 1024 bytes by hand
MAX_STAGES = 8
# accumulator registers per thread: partial (block_n / 2) + one FP32 total per 64-row sub-tile
MAX_ACC_REGS = 192
BLOCK_MS = (64, 128, 256)
BLOCK_NS = tuple(range(16, 193, 8))
BLOCK_NS_BF16 = tuple(range(16, 257, 8))
# FP8 with per-row B scales (1d1d): each thread also holds its columns' scales
MAX_BLOCK_N_SFB_ROWS = 160


def stage_bytes(block_m: int, block_n: int, sfb_rows: bool, dtype: str) -> int:
    """A and B tiles (128 bytes of K per row either dtype), the FP8 A scales and B's scales:
    per row for the 1d1d recipe (each stage's slice 128-byte aligned for the TMA), up to three
    block scales in 16 bytes for 1d2d tiles of one 64-row sub-tile per warpgroup (the kernel's
    SFB_RING; 256-row tiles read them from global memory)."""
    sfb = -(-block_n * 4 // 128) * 128 if sfb_rows else \
        16 if dtype == "fp8" and block_m < 256 else 0
    return block_m * 128 + block_n * 128 + block_m * 4 + sfb


def config_stage_bytes(config: Sm90GemmConfig) -> int:
    return stage_bytes(config.block_m, config.block_n, config.sfb_rows, config.dtype)


def epilogue_bytes(block_m: int, block_n: int, epilogue: str) -> int:
    """The staged BF16 output tile (one layout for the TMA store and the threads' stores),
    none when threads store straight from registers; plus up to 1 KiB of alignment before it."""
    return (0 if epilogue == "direct" else block_m * block_n * 2) + 1024


def exchange_bytes(config: Sm90GemmConfig) -> int:
    """kpair: the second math warpgroup's FP32 totals, handed to the first through shared memory."""
    return config.block_m * config.block_n * 4 if config.kpair else 0


def smem_bytes(config: Sm90GemmConfig) -> int:
    """Dynamic shared memory the kernel asks for (covers the kernel's layout)."""
    return config.stages * (config_stage_bytes(config) + 16) + \
        epilogue_bytes(config.block_m, config.block_n, config.epilogue) + exchange_bytes(config) + \
        SMEM_SPARE + 16


def block_k(dtype: str) -> int:
    return 128 if dtype == "fp8" else 64  # 128 bytes of K either way


def stages_for(config: Sm90GemmConfig, k: int, smem_limit: int = SMEM_LIMIT,
               max_stages: int = MAX_STAGES) -> int:
    """The deepest ring that fits next to the epilogue (at most one stage per K block, and
    ``max_stages``)."""
    budget = smem_limit - SMEM_SPARE - 16 - exchange_bytes(config) - \
        epilogue_bytes(config.block_m, config.block_n, config.epilogue)
    fit = budget // (config_stage_bytes(config) + 16)
    k_blocks = max(1, -(-k // block_k(config.dtype)))
    return max(0, min(max_stages, fit, max(2, k_blocks)))


def streaming(dtype: str, m: int, k: int) -> bool:
    """A problem of few rows (BF16 up to 128, FP8 up to 64) and a long K: every CTA streams a
    slice of B from HBM for most of its time (see STREAM_BYTES_PER_NS)."""
    return m <= (STREAM_MAX_M if dtype == "bf16" else STREAM_MAX_M_FP8) and k >= STREAM_MIN_K


def legal(block_m: int, block_n: int, split_k: int = 1, dtype: str = "fp8",
          sfb_rows: bool = False, grouped: bool = False) -> str | None:
    m_sub = 2 if block_m == 256 else 1
    if dtype == "bf16":  # no partial accumulator: the wgmma accumulates into the totals
        regs = m_sub * block_n // 2
        # measured with nvcc 13.0: the M-grouped epilogue's row checks spill 256 x 192
        limit = MAX_ACC_REGS - 16 if split_k > 1 or (grouped and m_sub > 1) else MAX_ACC_REGS
        return None if regs <= limit else f"{regs} accumulator registers per thread > {limit}"
    if sfb_rows and block_n > MAX_BLOCK_N_SFB_ROWS:
        return (f"block_n {block_n} > {MAX_BLOCK_N_SFB_ROWS}: per-column B scales need "
                f"registers of their own")
    regs = (m_sub + 1) * block_n // 2
    # Measured with nvcc 13.0 (tests/test_sm90_sass.py checks every picked config): the
    # split-K reduction needs a few registers of its own, and block_m 64 with block_n 192
    # spills since B scales may come from three 128-wide blocks.
    limit = MAX_ACC_REGS - 16 if split_k > 1 else (MAX_ACC_REGS - 8 if block_m == 64 else
                                                   MAX_ACC_REGS)
    if regs > limit:
        return f"{regs} accumulator registers per thread > {limit}"
    return None


def inflight_pays(dtype: str, block_m: int, stages: int) -> bool:
    """BF16 keeps a K block's wgmma in flight where measurements showed a gain: one 64-row
    sub-tile per warpgroup and a ring of 4 or more (2-6% at M <= 128). With two sub-tiles the
    tensor core is already busy during the other's issue, and holding a stage of a 3-deep
    ring cost up to 15% (sweep of 2026-11-21)."""
    return dtype == "bf16" and block_m <= 128 and stages >= 4


def fp8_inflight_pays(block_m: int, block_n: int, m: int, stages: int, *, kpair: bool,
                      sfb_rows: bool, grouped: bool) -> bool:
    """FP8 1d2d dense tiles of one 64-row sub-tile per warpgroup keep two partial accumulators
    (a K block's wgmma run while the previous block is promoted) where forced A/B on an H200
    measured a gain (results/2026-11-21-h200-v22-inflight.txt): M <= 128 and tiles 64 or 128
    columns wide, geometric mean +2.1% and +2.3% over 24 problems in two runs, up to +6%
    (64 x 7168 x 2048 +4%, 128 x 2112 x 7168 +3-4%), 64 x 32768 x 512 -2%, none other below
    -1%. Other widths lost up to 13% (`-v22-mathco.txt`: 64 x 104, and 64 x 32 -3.5% at
    64 x 4096 x 7168), and 128 x 128 tiles at M = 4096 gained only where K is short (v17).
    Not scored: crediting it in `estimate_ns` moved 22 picks for -14% to +7%
    (`-v22-credit.txt`). The two partials hold a stage each: a ring of 3 or more."""
    return (m <= 128 and block_m <= 128 and block_n in (64, 128) and stages >= 3 and
            not kpair and not sfb_rows and not grouped)


def kpair_pays(dtype: str, block_m: int, m: int, grouped: bool) -> bool:
    """FP8 64-row tiles take their K blocks in turns of two warpgroups (kpair) where that
    measured faster: problems of two or more m-blocks, whose B tiles are read twice (the second
    time from L2), so that the SMs wait on the tensor core and the promotion more than on HBM.
    Forced A/B on an H200 (results/2026-11-21-h200-kpair-ab.txt): 128 x 7168 x 2048 +9%,
    128 x 4096 x 7168 +3%; at M = 64, where B streams from HBM once, -1% to +2%."""
    return dtype == "fp8" and block_m == 64 and m > 64 and not grouped


def large_fp8(dtype: str, block_m: int, m: int, grouped: bool, sfb_rows: bool,
              direct: bool) -> bool:
    """Whether a config is scored by the fit of dense FP8 1d2d tiles of 128 and 256 rows on
    problems of many m-blocks (FIT_FLOPS_PER_NS): not grouped, no per-row B scales, D through
    the TMA store (``direct``: FP32 D or a C), M at least FIT_MIN_M. Measured on the grouped
    shapes, the fit ranks the contiguous ones as the general model does but moves the masked
    K = 2048 picks back to 256 x 128 tiles, 1.6% slower than their 256 x 112."""
    return (dtype == "fp8" and block_m >= 128 and m >= FIT_MIN_M and not grouped and
            not sfb_rows and not direct)


def tile_blocks(m: int, n: int, block_m: int, block_n: int, multicast: str = "") -> tuple[int, int]:
    """(m-blocks, n-blocks) of CTA tiles: with multicast the paired dimension's count rounded
    up to whole pairs (the spare CTA of an odd count only loads its half of the shared tile)."""
    m_blocks, n_blocks = -(-m // block_m), -(-n // block_n)
    if multicast == "a":
        n_blocks += n_blocks % 2
    elif multicast == "b":
        m_blocks += m_blocks % 2
    return m_blocks, n_blocks


def _units(m: int, n: int, config: Sm90GemmConfig, batch: int) -> int:
    """Work units, one per CTA's tile (or K slice of one)."""
    m_blocks, n_blocks = tile_blocks(m, n, config.block_m, config.block_n, config.multicast)
    return m_blocks * n_blocks * config.split_k * batch


def multicast_problem(multicast: str, block_m: int, block_n: int, m: int, n: int,
                      num_sms: int, grouped: bool = False) -> str | None:
    """Why a 2-CTA multicast of ``multicast`` ("a" or "b") does not apply, or None."""
    if num_sms < 2:
        return "a 2-CTA cluster needs 2 SMs"
    if multicast == "a":
        return None if -(-n // block_n) >= 2 else "one n-block: no pair shares A"
    if grouped:
        return "grouped kernels multicast A only (the pair must share its rows and expert)"
    if block_n % 16:
        return f"block_n {block_n} is not a multiple of 16 (two halves of whole swizzle atoms)"
    return None if -(-m // block_m) >= 2 else "one m-block: no pair shares B"


def _grid(units: int, num_sms: int, masked: bool, cluster: int) -> int:
    """CTAs of the persistent grid: whole clusters, never more than the units need (the
    masked kernel learns its tile count on the device: every SM)."""
    sms = num_sms - num_sms % cluster
    return sms if masked else min(sms, units)


def parse_forced(text: str) -> dict[str, int | str]:
    """``DGREG_SM90_CONFIG``'s fields (``block_m=128,block_n=192,stages=5,multicast=a``)."""
    fields: dict[str, int | str] = {}
    for part in text.split(","):
        name, _, value = part.partition("=")
        name, value = name.strip(), value.strip()
        if name == "multicast" and value in ("a", "b", "0"):
            fields[name] = "" if value == "0" else value
            continue
        if name not in ("block_m", "block_n", "stages", "split_k", "inflight", "kpair", "sms") or \
                not value.isdigit():
            raise ValueError(f"DGREG_SM90_CONFIG must look like 'block_m=128,block_n=192,stages=5' "
                             f"(optional split_k=N, inflight=0|1, kpair=0|1, multicast=a|b|0, "
                             f"sms=N; got {text!r})")
        fields[name] = int(value)
    return fields


def forced(text: str, m: int, n: int, k: int, num_sms: int, smem_limit: int,
           variant: Sm90GemmConfig, batch: int = 1) -> ConfigChoice:
    """The config ``DGREG_SM90_CONFIG`` asks for (``block_m=128,block_n=192[,stages=5]``)."""
    fields = parse_forced(text)
    block_m, block_n = fields.get("block_m", 128), fields.get("block_n", 128)
    split = fields.get("split_k", 1)
    problem = legal(block_m, block_n, split, variant.dtype, variant.sfb_rows, variant.grouped)
    if variant.grouped and split > 1:
        problem = "M-grouped kernels are not split along K"
    if block_m not in BLOCK_MS or block_n % 8 or not 8 <= block_n <= 256 or split < 1 or problem:
        raise ValueError(f"DGREG_SM90_CONFIG: block_m={block_m}, block_n={block_n}, "
                         f"split_k={split} is not a legal SM90 {variant.dtype} config "
                         f"({problem or 'see heuristics.BLOCK_MS'})")
    multicast = fields.get("multicast", "")
    why = multicast and multicast_problem(multicast, block_m, block_n, m, n, num_sms,
                                          variant.grouped or variant.k_grouped)
    if why:
        raise ValueError(f"DGREG_SM90_CONFIG={text!r}: multicast={multicast} does not apply ({why})")
    try:
        config = attrs.evolve(variant, block_m=block_m, block_n=block_n, split_k=split,
                              multicast=multicast, kpair=bool(fields.get("kpair", variant.kpair)),
                              num_sms=num_sms - num_sms % (2 if multicast else 1))
    except ValueError as exc:
        raise ValueError(f"DGREG_SM90_CONFIG={text!r}: {exc}") from None
    stages = fields.get("stages") or stages_for(config, k, smem_limit)
    units = _units(m, n, config, batch)
    grid = _grid(units, num_sms, variant.masked, config.cluster)
    if "sms" in fields:
        grid = fields["sms"]
        if not 1 <= grid <= num_sms or grid % config.cluster:
            raise ValueError(f"DGREG_SM90_CONFIG={text!r}: sms={grid} must be a multiple of "
                             f"the cluster size ({config.cluster}) from 1 to {num_sms}")
    try:
        config = attrs.evolve(config, stages=stages, num_sms=grid,
                              inflight=bool(fields.get("inflight", variant.inflight)))
    except ValueError as exc:
        raise ValueError(f"DGREG_SM90_CONFIG={text!r}: {exc}") from None
    if smem_bytes(config) > smem_limit:
        raise ValueError(f"DGREG_SM90_CONFIG={text!r}: {stages} stages need "
                         f"{smem_bytes(config)} bytes of shared memory, more than the "
                         f"{smem_limit} a block may have")
    return ConfigChoice(config, {"forced_by": "DGREG_SM90_CONFIG", "work_units": units})


# Cost model (calibrated on an H200, see benchmarks/NOTES.md): a CTA streams A and B tiles
# from L2 at about L2_BYTES_PER_NS and runs the tensor core at about FLOPS_PER_NS; a K block
# costs the slower of the two. HBM bounds the whole problem from below.
L2_BYTES_PER_NS = 75.0  # per SM
FLOPS_PER_NS = 9850.0  # per SM, FP8 dense
FLOPS_PER_NS_BF16 = 5970.0  # per SM, BF16 dense (788 TFLOPS measured on an H200 / 132)
HBM_BYTES_PER_NS = 4300.0  # whole chip
UNIT_FIXED_NS = 3000.0  # pipeline fill and epilogue latency of one work unit
SPLIT_FIXED_NS = 2000.0  # workspace round trip, fence and counter of a split unit
# A ring of 2 stages (one computed while the next loads) leaves the load's latency exposed:
# measured on an H200, BF16 256 x 128 tiles ran 1.28x slower with 2 stages than with 3, and
# 256 x 176 with 2 stages (the model's favourite) 1.2x slower than 128 x 256 with 3
# (benchmarks/NOTES.md). Such configs are only taken when K has at most 2 blocks.
MIN_RING = 3
# BF16 with M <= 128 and K >= 4096 (`streaming`; FP8: M <= 64): every CTA streams a slice of B
# from HBM for most of its time. Measured on an H200 (forced runs, results/2026-11-21-h200-stream-ab.txt and
# -deep-ring-ab2.json): ring depth is what such kernels need (64 x 64 tiles at M = 128: 13
# stages 23.8 us, 8 stages 27.7 us; 64 x 32 at M = 64: 16 stages 22.8, 8 stages 27.0), a split's
# reduction and each unit's start come on top of B's stream (benchmarks/splitk_probe_sm90.py:
# 2-3.8 us per split tile), and the stream itself runs at about 3.6 TB/s after a start of about
# 4 us. So their floor is that stream plus the unit's start and a split's reduction; a CTA reads
# its tiles from L2 at the rate its ring's bytes in flight allow (Little's law: stages x stage
# bytes over STREAM_LATENCY_NS, at most STREAM_L2_BYTES_PER_NS); and a K block takes at least
# STREAM_MIN_BLOCK_NS (barriers and wgmma issue: 64 x 16 tiles ran 137 ns per block). Fitted on
# the 41 forced runs of such shapes: the measured-fastest config of each shape is also the
# model's fastest among those measured, and predictions are within 6% (rms). Rings go up to
# STREAM_MAX_STAGES, and `choose` takes the model's best as it is (ties: the most slack under
# the stream). Forced A/B of the six bench picks this moved (results/2026-11-21-h200-kpair-ab.txt):
# 128 x 4096 x 7168 +12%, 64 x 7168 x 16384 +7%, 128 x 2112 x 7168 +4%, two +1%, one 0%.
# Not short K, where it moved three BF16 picks 1-4% the wrong way. FP8 only up to 64 rows:
# before the 1d2d B scales came through the ring (the math warps loaded them from global memory
# each K block), the model moved six FP8 picks 2-23% the wrong way. With them in the ring,
# forced runs of FP8 at M = 64 (results/2026-11-21-h200-v13-ab1.txt) rank as the model does on
# its three shapes (9% rms): unsplit 64 x 32 with 16 stages 15.1 us at 64 x 4096 x 7168 (the pick
# was 64 x 128 split 4, 16.4), 64 x 56 with 14 39.3 us at 64 x 7168 x 16384 (64 x 176 split 3,
# 42.9), 64 x 32 split 2 with 16 10.4 us at 64 x 2112 x 7168 (64 x 64 split 4, 10.6). At M = 128
# the streaming picks ran 6-19% slower (B is read twice there; the tensor core and the
# promotion weigh more), so those stay with the general model.
STREAM_BYTES_PER_NS = 3600.0
STREAM_FIXED_NS = 4000.0
STREAM_LATENCY_NS = 1700.0
STREAM_L2_BYTES_PER_NS = 100.0  # per SM
STREAM_MIN_BLOCK_NS = 120.0
STREAM_MAX_M = 128
STREAM_MAX_M_FP8 = 64
STREAM_MIN_K = 4096
STREAM_MAX_STAGES = 16
# The epilogue's cost, as multiples of moving D's bytes at the L2 rate. The TMA store of tiles
# whose width is a multiple of 64 (128B-swizzled chunks) overlaps the next unit's K loop: a
# quarter (fitted on the BF16 M = 4096 sweep). Stores from registers (FP32 D, a C) hold the
# math warps for the whole write and its barriers: 2.5 times (fitted on forced A/B runs,
# results/2026-11-21-h200-epilogue-cost-ab.txt, when other widths were stored that way too:
# of the 9 picks it moved, 8 ran 3-13% faster, among them the masked K = 2048 tiles, 256 x 112
# -> 256 x 128). Tiles of other widths are TMA-stored now too (one unswizzled box), but keep
# the 2.5: charged a quarter, the model moved 12 benchmark picks to such widths and every one
# measured 0.1-13.5% slower (results/2026-11-21-h200-v15-ab.txt; the cause is not isolated:
# FP8 tiles of 112-152 columns straddle two or three B-scale blocks, but BF16's moved picks,
# which have no scales, lost 0.1-9% too), while the store itself gained 0.7-3% on the picks
# that kept their width (-v15-ab.txt). The FP8 part of the cause was the 1d2d promotion: with
# the split between B scale blocks known at run time only, it cost a select and two multiplies
# per 8-column chunk. The kernel now instantiates its K loop per split (256 x 88 123.3 -> 115.7
# us in one bench session, -v16-split-ab.txt; across two runs, -v16-constfirst.txt against
# -v16-split-ab.txt: 128 x 176 131.5 -> 106.3 us, masked 256 x 112 34.4 -> 32.0 us), and FP8
# 1d2d 256-row tiles of any width are charged a quarter: of the bench picks that moves, the
# three masked K = 2048 tiles (256 x 128 -> 256 x 112) ran 1-2% faster (-v16-quarter-ab.txt). At 64 and 128 rows the picks it
# would move (64 x 152, 128 x 136, 128 x 96 split 3, 64 x 120) still ran 0-9% slower, so
# those keep the 2.5.
EPILOGUE_TMA_SHARE = 0.25
EPILOGUE_SYNC_COST = 2.5
# A 2-CTA cluster sharing one operand tile through TMA multicast halves that operand's L2
# reads per CTA, but the pair then advances in lockstep: a stage is free only when both CTAs
# are done with it, and a stage is full only when both halves have landed. Measured on an
# H200 with the same tiles (results/2026-11-21-h200-multicast.txt, benchmarks/NOTES.md): the
# halved reads bought nothing measurable (these kernels are bound by latency at small M and by
# the tensor core and promotion at large M, not by L2). FP8 at M = 4096: 0.97-1.02x; BF16 at
# M = 4096: 0.90-1.03x; M <= 128: 0.60-0.98x; grouped: 0.90-0.98x. So the model charges the
# coupling and credits no L2 saving: multicast configs are scored and shown by `explain`, and
# taken only when forced (DGREG_SM90_CONFIG=...,multicast=a|b).
MULTICAST_COST = 0.03
# Dense FP8 1d2d tiles of 128 and 256 rows on problems of many m-blocks (`large_fp8`): fitted
# on 60 forced runs of the six M = 4096 bench shapes, 256 x 88..128 and 128 x 128..192, on an
# H200 (results/2026-11-21-h200-v17-grid.txt; 3.3% rms, the measured-fastest config of each
# shape also the model's pick). A K block costs the slower of its L2 reads and its MMAs
# plus a fixed part (waits, wgmma issue, promotion the tensor core does not cover), which is
# higher per row for 128-row tiles; widths that give a tile more than two splits between B scale
# blocks (one K loop copy per split) pay FIT_SPLITS_NS per 128 rows; the epilogue is D's bytes
# at the L2 rate times FIT_EPILOGUE for every width. The general model charged 128-row tiles
# 0.76 of the tensor core's rate and picked 256 x 88 at 4096 x 2112 x 7168 (115.1 us), where
# 128 x 192 runs 103.2; on the other five shapes both pick 256 x 128. Over 739 problems the
# fit moves 37 dense FP8 picks (M >= 1024); forced A/B of each, in two sessions
# (results/2026-11-21-h200-v17-ab.txt): geometric mean +7.4%, 26 faster by up to 23%, 11
# slower by 1-9% (seven of them 256 x 112/120 -> 256 x 128 through the tie rule). Refitted on
# those runs as well and taken without the tie rule it moved 39 picks for +7.1%, losing up to
# 8% at M = 16384 (-v17-ab-joint.txt).
FIT_FLOPS_PER_NS = 12666.0  # per SM
FIT_BLOCK_NS = {128: 98.0, 256: 127.0}
FIT_SPLITS_NS = 33.0
FIT_L2_BYTES_PER_NS = 76.9
FIT_EPILOGUE = 0.84
FIT_UNIT_NS = 716.0
FIT_MIN_M = 1024
# the widths charged FIT_SPLITS_NS, listed once (choose scores thousands of candidates)
FIT_MANY_SPLITS = frozenset(bn for bn in range(8, 257, 8) if len(split_firsts(bn)) > 2)
SPLITS = (1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 14, 16)
TIE_MARGIN = 1.04
# The fit ranks closer than the general model (3.3% rms), so where it scores the leading
# candidate the tie window is narrower. With 4%, seven of its picks went from 256 x 112/120 to
# 256 x 128, 2.5-4.5% slower: the narrower tile fills the last wave better at the same wave
# count. With 2% (13 of 739 picks move, all dense FP8 at M >= 1024; forced A/B in two runs,
# results/2026-11-21-h200-v18-tie.txt): geometric mean +2.7%, 9 faster by 1.5-12.7%, three
# level, 1024 x 1000 x 1664 3-4.5% slower (128 x 72 -> 128 x 64). No window at all moved 20
# picks, losing 3-15% on seven (4096 x 2112 x 7168: 128 x 192 -> 128 x 176, 3.3%).
FIT_TIE_MARGIN = 1.02


def estimate_ns(m: int, n: int, k: int, num_sms: int, block_m: int, block_n: int,
                split: int, dtype: str = "fp8", *, batch: int = 1, out_bytes: int = 2,
                c_bytes: int = 0, inflight: bool = False,
                tma_store: bool = False, multicast: str = "",
                stages: int = MAX_STAGES, large_fp8: bool = False) -> tuple[float, int, int, float]:
    """(predicted kernel time in ns, work units, waves, the units' own time in ns) of one
    config; the last is the first without the HBM floor (the slack under a floor).

    ``batch`` independent ``m x n x k`` problems (K-grouped: the groups, ``k`` their mean K);
    D elements of ``out_bytes``, plus ``c_bytes`` per element read from an accumulator C.
    ``inflight``: BF16 keeps a K block's wgmma in flight while it issues the next;
    ``tma_store``: D leaves through the asynchronous TMA store in 64-column chunks,
    overlapped with the next unit (see EPILOGUE_TMA_SHARE for other widths);
    ``multicast``: "a" or "b", the operand a 2-CTA cluster shares (see MULTICAST_COST);
    ``stages``: the ring's depth (used for `streaming` problems, see STREAM_LATENCY_NS);
    ``large_fp8``: a dense FP8 1d2d config of 128 or 256 rows, scored by the fit of
    FIT_FLOPS_PER_NS and what follows it (see `large_fp8`).
    """
    bk = block_k(dtype)
    k_blocks = max(1, -(-k // bk))
    m_blocks, n_blocks = tile_blocks(m, n, block_m, block_n, multicast)
    tiles = m_blocks * n_blocks * batch
    units = tiles * split
    if multicast:
        num_sms -= num_sms % 2
    waves = -(-units // num_sms)
    # With one 64-row sub-tile per warpgroup the promotion FFMAs stall the tensor core more
    # than with two, whose wgmma and promotion interleave (measured: 0.76 vs 0.95).
    # BF16 has no promotion at all.
    mma_efficiency = 0.95 if block_m == 256 or dtype == "bf16" else 0.76
    flops = FLOPS_PER_NS if dtype == "fp8" else FLOPS_PER_NS_BF16
    stream = streaming(dtype, m, k)
    tile_bytes = (block_m + block_n) * 128
    if large_fp8:
        mma = 2 * block_m * block_n * bk / FIT_FLOPS_PER_NS + FIT_BLOCK_NS[block_m]
        if block_n in FIT_MANY_SPLITS:
            mma += FIT_SPLITS_NS * block_m / 128
        per_k_block = max(tile_bytes / FIT_L2_BYTES_PER_NS, mma)
    else:
        mma = 2 * block_m * block_n * bk / (flops * mma_efficiency)
        if stream:  # the ring's bytes in flight set the L2 rate
            rate = min(STREAM_L2_BYTES_PER_NS, stages * tile_bytes / STREAM_LATENCY_NS)
            per_k_block = max(tile_bytes / rate, mma, STREAM_MIN_BLOCK_NS)
        else:
            per_k_block = max(tile_bytes / L2_BYTES_PER_NS, mma)
    if multicast:  # lockstep of the pair; no credit for the halved L2 reads (measured)
        per_k_block *= 1 + MULTICAST_COST
    if inflight:  # no drain of the tensor core between K blocks (measured 2-6% at M <= 128)
        per_k_block *= 0.96
    epilogue = block_m * block_n * (out_bytes + c_bytes) / L2_BYTES_PER_NS
    if large_fp8:
        epilogue *= FIT_EPILOGUE
    else:
        epilogue *= EPILOGUE_TMA_SHARE if tma_store else EPILOGUE_SYNC_COST
    # a split unit writes its FP32 partial; the last unit of the tile reads the others back
    reduction = split * block_m * block_n * 4 / L2_BYTES_PER_NS + SPLIT_FIXED_NS if split > 1 else 0.0
    fixed = FIT_UNIT_NS if large_fp8 else STREAM_FIXED_NS if stream else UNIT_FIXED_NS
    unit = -(-k_blocks // split) * per_k_block + epilogue + reduction + fixed
    elem = 1 if dtype == "fp8" else 2
    nbytes = batch * ((m * k + n * k) * elem + (out_bytes + c_bytes) * m * n)
    if stream:  # B's stream, then the unit's start and a split's reduction
        floor = nbytes / STREAM_BYTES_PER_NS * (1 + MULTICAST_COST if multicast else 1)
        return max(waves * unit, floor + reduction + fixed), units, waves, waves * unit
    return max(waves * unit, nbytes / HBM_BYTES_PER_NS), units, waves, waves * unit


def choose(m: int, n: int, k: int, num_sms: int, smem_limit: int = SMEM_LIMIT,
           dtype: str = "fp8", grouped: bool = False, masked: bool = False, *,
           k_grouped: bool = False, sfb_rows: bool = False, out_f32: bool = False,
           with_c: bool = False, batch: int = 1) -> ConfigChoice:
    """The best config for an ``m x n x k`` problem on ``num_sms`` SMs, with the runners-up.

    For the masked kernel ``m`` is the rows expected over all experts (G x expected_m); for
    the K-grouped kernel ``batch`` is the number of groups and ``k`` their mean K.

    Candidates are scored by :func:`estimate_ns`; split-K is considered only when the tiles
    alone leave SMs idle, with at least 2 K blocks per unit.
    """
    if num_sms < 1:
        raise ValueError(f"num_sms must be positive (got {num_sms})")
    grouped = grouped or masked
    variant = Sm90GemmConfig(128, 128, 2, num_sms, 1, dtype, grouped, masked, k_grouped,
                             sfb_rows, out_f32, with_c)
    override = settings.get("DGREG_SM90_CONFIG")
    allowed_multicasts = ("", "a", "b")
    if override:
        fields = parse_forced(override)
        if set(fields) != {"multicast"}:
            return forced(override, m, n, k, num_sms, smem_limit, variant, batch)
        allowed_multicasts = (fields["multicast"],)  # the heuristics' pick with this multicast
    k_blocks = max(1, -(-k // block_k(dtype)))
    out_bytes = 4 if out_f32 else 2
    c_bytes = 4 if with_c else 0  # FP32 C, the common case (BF16 C reads half)
    stream = streaming(dtype, m, k)
    max_stages = STREAM_MAX_STAGES if stream else MAX_STAGES
    scored = []

    def scored_by_fit(block_m: int) -> bool:  # see `large_fp8`
        return large_fp8(dtype, block_m, m, grouped or k_grouped, sfb_rows, out_f32 or with_c)

    # M-grouped kernels are not split; a 256-row contiguous tile covering two experts runs
    # twice (rare: only at expert boundaries that are not 256-aligned; not modelled)
    for block_m in BLOCK_MS:
        if block_m > 64 and m <= block_m // 2:
            continue  # a smaller block_m covers m with less waste
        fit = scored_by_fit(block_m)
        for block_n in BLOCK_NS if dtype == "fp8" else BLOCK_NS_BF16:
            if legal(block_m, block_n, 1, dtype, sfb_rows, grouped):
                continue
            kpair = kpair_pays(dtype, block_m, m, grouped or k_grouped)
            config = attrs.evolve(variant, block_m=block_m, block_n=block_n, kpair=kpair)
            stages = stages_for(config, k, smem_limit, max_stages)
            if stages < min(MIN_RING, max(2, k_blocks)):
                continue
            # the epilogue's charge (see EPILOGUE_SYNC_COST): the swizzled TMA store's for
            # widths that are multiples of 64, and for FP8 1d2d 256-row tiles of any width
            tma_store = config.epilogue in ("tma", "mixed") and (
                block_n % 64 == 0 or (dtype == "fp8" and not sfb_rows and block_m == 256))
            tiles = math.prod(tile_blocks(m, n, block_m, block_n)) * batch
            multicasts = [mc for mc in allowed_multicasts if not mc or (not kpair and not
                          multicast_problem(mc, block_m, block_n, m, n, num_sms,
                                            grouped or k_grouped))]
            fp8_inflight = dtype == "fp8" and fp8_inflight_pays(
                block_m, block_n, m, stages, kpair=kpair, sfb_rows=sfb_rows,
                grouped=grouped or k_grouped)
            for split in SPLITS:
                if split > 1 and (grouped or tiles * split > num_sms or 2 * split > k_blocks):
                    break
                if legal(block_m, block_n, split, dtype, sfb_rows, grouped):
                    continue
                inflight = inflight_pays(dtype, block_m, stages)
                for mc in multicasts:
                    ns, units, waves, busy = estimate_ns(
                        m, n, k, num_sms, block_m, block_n, split, dtype, batch=batch,
                        out_bytes=out_bytes, c_bytes=c_bytes, inflight=inflight,
                        tma_store=tma_store, multicast=mc, stages=stages, large_fp8=fit)
                    # masked: the real tile count is only known on the device, use every SM
                    grid = _grid(units, num_sms, masked, 2 if mc else 1)
                    picked = attrs.evolve(config, stages=stages, num_sms=grid, split_k=split,
                                          inflight=inflight or (fp8_inflight and not mc),
                                          multicast=mc)
                    # streaming: among configs at B's stream, the one with the most slack
                    tie = busy if stream else 0.0
                    scored.append(((ns, tie, waves, -block_n, block_m, split, mc), picked, units,
                                   waves, ns))
    if not scored:
        raise ValueError(f"no SM90 {dtype} config fits m={m} n={n} k={k}" +
                         (f" with DGREG_SM90_CONFIG={override!r}" if override else ""))
    scored.sort(key=lambda item: item[0])
    # The model cannot tell candidates within a few percent apart; among those, the largest
    # tile moves the fewest bytes per FLOP, which held up best in measurements (a narrower
    # window where the fit scores the lead, see FIT_TIE_MARGIN).
    # Not for `streaming` problems, whose model is fitted closely enough to be taken at its word.
    margin = FIT_TIE_MARGIN if scored_by_fit(scored[0][1].block_m) else TIE_MARGIN
    near = scored[:1] if stream else [s for s in scored if s[4] <= scored[0][4] * margin]
    pick = max(near, key=lambda s: (s[1].block_m * s[1].block_n, -s[4]))
    scored.remove(pick)
    scored.insert(0, pick)
    _, best, units, waves, ns = scored[0]
    figures = {
        "predicted_us": round(ns / 1e3, 2),
        "work_units": units,
        "waves": waves,
        "last_wave_sm_utilisation": round((units - (waves - 1) * num_sms) / num_sms, 3),
        "smem_bytes": smem_bytes(best),
        "threads": best.threads,
        "epilogue": best.epilogue,
    }
    alternatives = tuple(
        (cfg, ns_ / 1e3, f"predicted {ns_ / 1e3:.1f} us, {units_} units, {waves_} wave(s)")
        for _, cfg, units_, waves_, ns_ in scored[1:9])
    return ConfigChoice(best, figures, alternatives)
