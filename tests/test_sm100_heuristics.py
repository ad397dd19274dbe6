"""The sm100 plugin's heuristics, on the CPU: hand-checked choices (the arithmetic is in the
comments; the cost model's figures are in dgreg_sm100/heuristics.py) and the machine's limits
on every choice."""

from __future__ import annotations

import attrs
import pytest

pytest.importorskip("dgreg_sm100", reason="the dgreg-sm100 distribution is not installed")

from dgreg_sm100 import heuristics
from dgreg_sm100.config import Sm100GemmConfig
from dgreg_sm100.heuristics import Shape, choose, legal

from dgreg import config

B200_SMS = 148


def cfg(dtype="fp8", layout="NT", grouping="none", d_dtype="bf16", block_m=128, block_n=128,
        swap_ab=False, cluster=1, stages=1, num_sms=B200_SMS) -> Sm100GemmConfig:
    return Sm100GemmConfig(dtype, layout, grouping, d_dtype, block_m, block_n, swap_ab, cluster,
                           stages, num_sms)


def test_tmem_budget_decides_the_widest_fp8_tile():
    # Two accumulators of N columns plus scale words (4 columns per 128 rows of X and of Y):
    # FP8 N = 256 needs 2 * 256 + 4 + 8 = 524 > 512 columns; N = 224 needs 448 + 4 + 8 = 460.
    assert heuristics.tmem_columns("fp8", 256) == 524
    assert "524 TMEM columns" in legal(cfg(block_n=256))
    assert legal(cfg(block_n=224)) is None
    # BF16 has no scale words: 2 * 256 = 512 columns is exactly the budget.
    assert heuristics.tmem_columns("bf16", 256) == 512 and legal(cfg("bf16", block_n=256)) is None
    # tcgen05.alloc takes powers of two from 32 columns
    assert [heuristics.tmem_allocation(c) for c in (8, 40, 460, 512)] == [32, 64, 512, 512]


def test_large_fp8_gemm_pairs_ctas_on_the_widest_legal_tile():
    choice = choose("fp8", "NT", "none", "bf16", Shape(4096, 7168, 7168), B200_SMS)
    best = choice.config
    # M = 4096 is 32 blocks of 128 rows, an even count, so CTA pairs (one MMA of M = 256)
    # are legal, and they halve each SM's share of B. Per CTA and 128-K block: (128 rows of A
    # + 224 / 2 rows of B) x 128 bytes = 30720 B at 120 B/ns = 256 ns, against 241 ns of MMA
    # (2 * 128 * 224 * 128 / 30400 FLOP/ns). Tiles: 4096 / 256 x ceil(7168 / 224) = 16 x 32 =
    # 512 over 148 / 2 = 74 pairs: 7 waves. block_n 192 would take 16 x 38 = 608 tiles,
    # 9 waves, each tile only 7% shorter.
    assert (best.block_m, best.block_n, best.cluster, best.swap_ab) == (128, 224, 2, False)
    assert choice.figures["tiles"] == 512 and choice.figures["waves"] == 7
    assert choice.figures["tmem_columns"].startswith("460 used of 512")
    assert best.num_sms == B200_SMS


def test_an_odd_number_of_row_blocks_does_not_pair_ctas():
    # M = 384 is 3 blocks of 128 rows: a pair would leave one CTA without rows.
    choice = choose("fp8", "NT", "none", "bf16", Shape(384, 7168, 7168), B200_SMS)
    assert choice.config.cluster == 1
    assert all(alt.cluster == 1 for alt, _, _ in choice.alternatives)


def test_masked_decode_swaps_a_and_b():
    # 8 experts expecting 16 rows each, M_max = 4096, N = 4096, K = 7168. Without swap a tile
    # reads 128 rows of A per K block (rows past masked_m are still read) plus its B rows:
    # block_n 128 costs (128 + 128) x 128 B / 120 B/ns = 273 ns per K block, x 56 blocks x 2
    # waves (8 x 32 = 256 tiles) = 32.6 us + 2 us. With swap, B is the MMA's M side and the
    # 16 rows of A its N side: (128 + 16) x 128 / 120 = 154 ns per K block, 19.2 us in all,
    # under the HBM floor of reading every expert's B once (8 x 4096 x 7168 B at 8 TB/s =
    # 29.4 us), so swap configs tie at the floor and the one wasting least of its tile wins.
    choice = choose("fp8", "NT", "masked", "bf16", Shape(4096, 4096, 7168, 8, expected_m=16),
                    B200_SMS)
    best = choice.config
    assert best.swap_ab and (best.block_m, best.block_n) == (16, 128)
    assert choice.figures["predicted_us"] == pytest.approx(29.6, abs=0.1)
    unswapped = [ns for alt, ns, _ in choice.alternatives if not alt.swap_ab]
    assert min(unswapped) == pytest.approx(32.58, abs=0.01)
    # masked: the real tile count lives on the device, so the grid is every SM
    assert best.num_sms == B200_SMS


def test_a_single_row_spreads_n_over_more_sms_than_swap_would():
    # M = 1, N = 2112: swap tiles take 128 columns of N each, only ceil(2112 / 128) = 17
    # tiles for 148 SMs; block_n 32 makes 66 tiles of 1 + 32 rows per K block (35 ns each).
    choice = choose("fp8", "NT", "none", "bf16", Shape(1, 2112, 7168), B200_SMS)
    best = choice.config
    assert not best.swap_ab and best.block_n == 32
    assert choice.figures["tiles"] == 66 and best.num_sms == 66  # no idle CTAs in the grid


def test_stages_fill_the_shared_memory():
    # FP8, block_n 224, BF16 D: a stage is 128 x 128 (A) + 224 x 128 (B) + 4 x (128 + 256)
    # (scale words) = 46592 B; the epilogue stages 4 warps x 2 x 32 x 32 x 2 B = 16384 B.
    # 4 stages: 186368 + 16384 + (3 x 4 + 4) x 8 + 16 + 1024 (alignment) = 203920 B fits in
    # 232448 B; a fifth stage (+46592) does not.
    one = cfg(block_n=224)
    assert heuristics.stage_bytes("fp8", 224, 1) == 46592
    assert heuristics.stages_for(one) == 4
    assert heuristics.smem_bytes(attrs.evolve(one, stages=4)) == 203920
    # a CTA pair loads half of B's rows per CTA: 128 x 128 + 112 x 128 + 1536 = 32256 B
    assert heuristics.stage_bytes("fp8", 224, 2) == 32256


def test_mn_major_b_takes_whole_atoms_only():
    # TN: B passed as [K, N] is MN-major; a BF16 atom is 64 columns, so block_n is a multiple
    # of 64 (or of 128 per CTA of a pair), and swap-AB puts the MN-major A on the N side,
    # where only block_m 64 fills an atom: 4 + 2 + 1 legal configs.
    choice = choose("bf16", "TN", "none", "fp32", Shape(4096, 4096, 4096), B200_SMS)
    seen = [choice.config] + [alt for alt, _, _ in choice.alternatives]
    assert len(seen) == 7
    assert all((c.block_m if c.swap_ab else c.block_n // c.cluster) % 64 == 0 for c in seen)


def test_legality_rules_name_their_reason():
    assert "multiple of 32" in legal(cfg(block_n=48))
    assert "M side is 128 rows" in legal(cfg(block_m=64))
    assert "128 rows of B" in legal(cfg(block_m=32, block_n=64, swap_ab=True))
    assert "dense GEMM without swap-AB" in legal(cfg(grouping="masked", cluster=2))
    # An MN-major B tile of 64 FP8 rows is half a 128-byte swizzle atom; BF16 fills one.
    assert "swizzle atoms" in legal(cfg(layout="NN", block_n=64))
    assert legal(cfg("bf16", layout="NN", block_n=64)) is None
    # A CTA pair halves B's rows: FP8 MN-major needs 128 per CTA, which TMEM cannot hold.
    assert "swizzle atoms" in legal(cfg(layout="NN", block_n=224, cluster=2))


def test_choice_is_deterministic_and_shows_losers():
    a = choose("bf16", "NT", "none", "fp32", Shape(4096, 4096, 4096), B200_SMS)
    b = choose("bf16", "NT", "none", "fp32", Shape(4096, 4096, 4096), B200_SMS)
    assert a == b
    assert len(a.alternatives) == 8  # of 19 legal configs: 8 block_n x 2 cluster sizes + 3 swaps
    assert all(ns >= a.figures["predicted_us"] * 0.9 for _, ns, _ in a.alternatives)
    for key in ("predicted_us", "tiles", "waves", "tmem_columns", "stages", "smem_bytes",
                "swap_ab", "cluster"):
        assert key in a.figures
    assert "not calibrated" in a.figures["cost_model"]


@pytest.mark.parametrize("grouping", ["none", "contiguous", "masked", "k_grouped"])
@pytest.mark.parametrize("dtype", ["fp8", "bf16"])
@pytest.mark.parametrize(("m", "n", "k"), [(1, 7, 100), (77, 200, 300), (256, 4096, 7168),
                                           (4096, 24576, 1536), (8192, 2112, 512)])
def test_every_choice_respects_the_machine(grouping, dtype, m, n, k):
    layout = "TN" if grouping == "k_grouped" else ("NN" if grouping == "contiguous" else "NT")
    shape = Shape(m, n, k, 4, expected_m=max(1, m // 8) if grouping == "masked" else None,
                  k_groups=4 if grouping == "k_grouped" else 1)
    best = choose(dtype, layout, grouping, "fp32", shape, B200_SMS).config
    assert legal(best) is None
    assert best.stages >= 2 and heuristics.smem_bytes(best) <= heuristics.SMEM_LIMIT
    assert heuristics.tmem_columns(dtype, best.umma_n) <= heuristics.TMEM_COLUMNS
    assert 1 <= best.num_sms <= B200_SMS and best.num_sms % best.cluster == 0
    assert best.cluster == 1 or grouping == "none"


def test_fewer_sms_give_a_smaller_grid():
    assert choose("fp8", "NT", "none", "bf16", Shape(4096, 7168, 7168), 100).config.num_sms == 100


def test_forced_config(monkeypatch):
    with config.scope():
        monkeypatch.setenv("DGREG_SM100_CONFIG", "block_n=256,cluster=2,stages=3")
        choice = choose("bf16", "NT", "none", "bf16", Shape(4096, 4096, 4096), B200_SMS)
        assert (choice.config.block_n, choice.config.cluster, choice.config.stages) == (256, 2, 3)
        assert choice.figures["forced_by"] == "DGREG_SM100_CONFIG"
        for bad in ("block_n=48", "tile=3", "block_n=256", "swap_ab=1,block_m=8"):
            monkeypatch.setenv("DGREG_SM100_CONFIG", bad)
            with pytest.raises(ValueError, match="DGREG_SM100_CONFIG"):
                choose("fp8", "NT", "none", "bf16", Shape(4096, 4096, 4096), B200_SMS)


def test_no_legal_config_is_a_clear_error():
    with pytest.raises(ValueError, match="no SM100 fp8 config fits"):
        choose("fp8", "NT", "none", "bf16", Shape(128, 128, 128), B200_SMS, smem_limit=30000)
    with pytest.raises(ValueError, match="num_sms must be positive"):
        choose("fp8", "NT", "none", "bf16", Shape(128, 128, 128), 0)
