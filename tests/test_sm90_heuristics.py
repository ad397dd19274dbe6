"""The sm90 plugin's heuristics and code generation, on the CPU."""

from __future__ import annotations

import attrs
import pytest

pytest.importorskip("dgreg_sm90", reason="the dgreg-sm90 distribution is not installed")

from dgreg_sm90 import codegen, heuristics
from dgreg_sm90.config import Sm90GemmConfig

from dgreg import config

H100_SMS = 132


def test_unaligned_block_n_fills_more_sms():
    # DeepGEMM's README case: 128x128 tiles keep 112 of 132 SMs busy, block_n 112 keeps 128
    choice = heuristics.choose(256, 7168, 7168, H100_SMS)
    assert choice.config.block_n == 112
    assert choice.figures["work_units"] in (128, 256)  # 2 x 64 tiles (x split)


def test_large_problems_take_the_largest_tiles_that_fit():
    choice = heuristics.choose(4096, 7168, 16384, H100_SMS)
    assert (choice.config.block_m, choice.config.block_n, choice.config.split_k) == (256, 128, 1)
    assert choice.config.stages >= 3


def test_skinny_problems_split_k_and_fill_the_sms():
    choice = heuristics.choose(64, 2112, 7168, H100_SMS)
    cfg = choice.config
    assert cfg.block_m == 64 and cfg.split_k > 1
    tiles = -(-2112 // cfg.block_n)
    assert tiles * cfg.split_k <= H100_SMS and tiles * cfg.split_k >= H100_SMS // 2


def test_short_k_does_not_split():
    for m, n, k in ((64, 7168, 2048), (128, 32768, 512), (4096, 4096, 7168)):
        assert heuristics.choose(m, n, k, H100_SMS).config.split_k == 1


def test_choice_is_deterministic_and_shows_losers():
    a = heuristics.choose(128, 4096, 7168, H100_SMS)
    b = heuristics.choose(128, 4096, 7168, H100_SMS)
    assert a == b
    assert len(a.alternatives) == 8
    assert all(cost >= 0 for _, cost, _ in a.alternatives)
    assert "predicted_us" in a.figures and a.figures["smem_bytes"] <= heuristics.SMEM_LIMIT


@pytest.mark.parametrize("m", [1, 7, 64, 129, 1000, 4096])
@pytest.mark.parametrize("n", [8, 200, 2112, 24576])
@pytest.mark.parametrize("k", [128, 1040, 7168])
def test_every_choice_is_legal(m, n, k):
    cfg = heuristics.choose(m, n, k, H100_SMS).config
    assert cfg.block_m in heuristics.BLOCK_MS and cfg.block_n % 8 == 0
    assert heuristics.legal(cfg.block_m, cfg.block_n, cfg.split_k) is None
    bf16 = heuristics.choose(m, n, k, H100_SMS, dtype="bf16").config
    assert heuristics.legal(bf16.block_m, bf16.block_n, bf16.split_k, "bf16") is None
    assert heuristics.smem_bytes(bf16) <= heuristics.SMEM_LIMIT
    assert heuristics.smem_bytes(cfg) <= heuristics.SMEM_LIMIT
    k_blocks = -(-k // 128)
    assert cfg.split_k == 1 or 2 * cfg.split_k <= k_blocks
    assert 1 <= cfg.num_sms <= H100_SMS


def test_fewer_sms_give_a_smaller_grid():
    assert heuristics.choose(4096, 7168, 7168, 100).config.num_sms == 100


def test_forced_config(monkeypatch):
    with config.scope():
        monkeypatch.setenv("DGREG_SM90_CONFIG", "block_m=128,block_n=192,stages=4")
        choice = heuristics.choose(4096, 7168, 7168, H100_SMS)
        assert choice.config == Sm90GemmConfig(128, 192, 4, H100_SMS)
        assert choice.figures["forced_by"] == "DGREG_SM90_CONFIG"
        for bad in ("block_m=96,block_n=128", "block_n=12", "tile=3", "block_m=256,block_n=256"):
            monkeypatch.setenv("DGREG_SM90_CONFIG", bad)
            with pytest.raises(ValueError, match="DGREG_SM90_CONFIG"):
                heuristics.choose(64, 64, 128, H100_SMS)


def test_forced_config_that_overflows_shared_memory_is_refused_before_compiling(monkeypatch):
    with config.scope():
        # 64 x 112 FP8 stages take about 23 KB: 16 of them do not fit in 227 KB
        monkeypatch.setenv("DGREG_SM90_CONFIG", "block_m=64,block_n=112,stages=16")
        with pytest.raises(ValueError, match=r"16 stages need \d+ bytes of shared memory"):
            heuristics.choose(128, 7168, 2048, H100_SMS)
        monkeypatch.setenv("DGREG_SM90_CONFIG", "block_m=64,block_n=112,stages=9")
        cfg = heuristics.choose(128, 7168, 2048, H100_SMS).config
        assert cfg.stages == 9 and heuristics.smem_bytes(cfg) <= heuristics.SMEM_LIMIT


def test_bf16_long_k_few_rows_streams_unsplit_tiles_through_a_deep_ring():
    """BF16, M <= 128, K >= 4096: the stream of B bounds the time and a split's reduction
    comes on top (measured on an H200: 64 x 64 unsplit with 13 stages ran 1.12x faster than
    128 x 88 split 2 at 128 x 4096 x 7168; 64 x 56 unsplit 1.07x faster than 64 x 184 split 2
    at 64 x 7168 x 16384)."""
    assert heuristics.streaming("bf16", 64, 7168)
    for m, n, k in ((64, 4096, 7168), (128, 7168, 16384), (64, 7168, 16384)):
        cfg = heuristics.choose(m, n, k, H100_SMS, dtype="bf16").config
        assert cfg.split_k == 1 and cfg.block_m == 64, (m, n, k, cfg)
    cfg = heuristics.choose(128, 4096, 7168, H100_SMS, dtype="bf16").config
    assert (cfg.block_m, cfg.block_n, cfg.split_k, cfg.stages) == (64, 64, 1, 13)
    cfg = heuristics.choose(64, 4096, 7168, H100_SMS, dtype="bf16").config
    assert cfg.stages > heuristics.MAX_STAGES  # a ring deeper than elsewhere


# forced runs on an H200 (us): (m, n, k), then (block_m, block_n, split_k, stages) fastest first
_STREAM_MEASURED = [
    ((128, 4096, 7168), [((64, 64, 1, 13), 23.8), ((128, 88, 2, 7), 26.8), ((128, 128, 4, 5), 27.4),
                         ((64, 64, 1, 8), 27.7)]),
    ((64, 4096, 7168), [((64, 32, 1, 16), 22.8), ((64, 128, 4, 8), 24.8), ((64, 32, 1, 8), 27.0)]),
    ((64, 7168, 16384), [((64, 128, 1, 8), 68.3), ((64, 184, 2, 6), 70.2),
                          ((64, 256, 3, 4), 70.9)]),
    ((128, 2112, 7168), [((64, 104, 3, 9), 16.8), ((64, 32, 1, 16), 18.0),
                         ((64, 32, 2, 16), 21.9)]),
]


@pytest.mark.parametrize(("shape", "runs"), _STREAM_MEASURED)
def test_streaming_model_ranks_measured_configs_as_they_ran(shape, runs):
    """The ring's bytes in flight set the L2 rate: the predicted order of these configs is the
    measured one, and each prediction is within 20% of its measurement (6% rms over the 41 runs
    it was fitted on)."""
    m, n, k = shape
    predicted = []
    for (block_m, block_n, split, stages), us in runs:
        ns, *_ = heuristics.estimate_ns(m, n, k, H100_SMS, block_m, block_n, split, "bf16",
                                        inflight=True, tma_store=block_n % 64 == 0, stages=stages)
        assert abs(ns / 1e3 / us - 1) < 0.2, (block_m, block_n, split, stages, ns / 1e3, us)
        predicted.append(ns)
    assert predicted == sorted(predicted)


@pytest.mark.parametrize(("dtype", "m", "n", "k"), [("fp8", 128, 4096, 7168), ("bf16", 64, 7168, 2048),
                                                    ("bf16", 4096, 4096, 7168)])
def test_streaming_model_leaves_fp8_beyond_64_rows_short_k_and_large_m_alone(dtype, m, n, k):
    """Measured: the streaming model moved FP8 picks of 128 rows and short-K BF16 picks the
    wrong way."""
    assert not heuristics.streaming(dtype, m, k)
    cfg = heuristics.choose(m, n, k, H100_SMS, dtype=dtype).config
    assert cfg.stages <= heuristics.MAX_STAGES
    if dtype == "fp8":  # the split kpair pick measured fastest there (deeper unsplit rings: 6-11% slower)
        assert (cfg.block_m, cfg.block_n, cfg.split_k, cfg.kpair) == (64, 128, 2, True)


# FP8 at M = 64, forced runs on an H200 with the 1d2d B scales in the ring (us):
# (m, n, k), then (block_m, block_n, split_k, stages) and the time, fastest first
_FP8_STREAM_MEASURED = [
    ((64, 2112, 7168), [((64, 32, 2, 16), 10.4), ((64, 64, 4, 8), 10.6), ((64, 64, 2, 12), 11.0),
                        ((64, 32, 4, 16), 14.7)]),
    ((64, 4096, 7168), [((64, 32, 1, 16), 15.1), ((64, 64, 2, 12), 15.2), ((64, 128, 2, 8), 15.9),
                        ((64, 128, 4, 8), 16.4)]),
    ((64, 7168, 16384), [((64, 56, 1, 14), 39.3), ((64, 64, 1, 12), 39.5), ((64, 112, 1, 9), 40.8),
                         ((64, 176, 3, 6), 42.9)]),
]


@pytest.mark.parametrize(("shape", "runs"), _FP8_STREAM_MEASURED)
def test_fp8_streams_at_64_rows_and_picks_what_ran_fastest(shape, runs):
    """FP8 with M <= 64 and a long K is scored by the streaming model: among the measured
    configs its fastest is the measured fastest, each prediction within 20% of its run, and
    `choose` takes that config."""
    m, n, k = shape
    assert heuristics.streaming("fp8", m, k)
    predicted = {}
    for (block_m, block_n, split, stages), us in runs:
        ns, *_ = heuristics.estimate_ns(m, n, k, H100_SMS, block_m, block_n, split, "fp8",
                                        tma_store=block_n % 64 == 0, stages=stages)
        assert abs(ns / 1e3 / us - 1) < 0.2, (block_m, block_n, split, stages, ns / 1e3, us)
        predicted[(block_m, block_n, split, stages)] = ns
    assert min(predicted, key=predicted.get) == runs[0][0]
    cfg = heuristics.choose(m, n, k, H100_SMS).config
    assert (cfg.block_m, cfg.block_n, cfg.split_k, cfg.stages) == runs[0][0]


def test_wgmma_wrapper_has_one_operand_per_accumulator():
    text = codegen.wgmma_tile(112)
    assert "m64n112k32.f32.e4m3.e4m3" in text and "p, 1, 1;" in text
    assert text.count('"+f"(d[') == 56 and "float (&d)[56]" in text
    bf16 = codegen.wgmma_tile(256, "bf16")
    assert "m64n256k16.f32.bf16.bf16" in bf16 and "p, 1, 1, 0, 0;" in bf16
    assert bf16.count('"+f"(d[') == 128


def test_source_bakes_every_config_value():
    src = codegen.gemm_source(Sm90GemmConfig(128, 96, 5, 132, 3))
    for define in ("#define BLOCK_M 128", "#define BLOCK_N 96", "#define STAGES 5",
                   "#define NUM_MATH_WG 2", "#define M_SUB 1", "#define SPLIT_K 3",
                   "#define IS_FP8 1", "#define KERNEL_NAME sm90_fp8_gemm_1d2d",
                   "#define SFB_ROWS 0", "#define GROUPED 0", "#define OUT_F32 0",
                   "#define WITH_C 0", "#define EPI_ROWS 128",  # split: one writer group
                   f"#define SMEM_REQUESTED {codegen.smem_bytes(Sm90GemmConfig(128, 96, 5, 132, 3))}"):
        assert define in src.code
    assert set(src.headers) == set(codegen.HEADERS) and src.arch == "sm_90a"
    bf16 = codegen.gemm_source(Sm90GemmConfig(128, 256, 4, 132, 1, "bf16"))
    assert "#define IS_FP8 0" in bf16.code and bf16.entry == "sm90_bf16_gemm"


def test_the_source_lists_every_split_of_a_tile_between_b_scale_blocks():
    """A tile starts at a multiple of block_n; ``first`` counts its 8-column chunks before the
    next 128-column B scale block. Hand-checked: 88-wide tiles start at 0, 88, 176 = 128 + 48,
    ... so every multiple of 8 occurs and first runs 11 (start 0) down to 1 (start 120)."""
    assert codegen.split_firsts(128) == [16] and codegen.split_firsts(256) == [16]
    assert codegen.split_firsts(64) == [8] and codegen.split_firsts(32) == [4]
    assert codegen.split_firsts(88) == list(range(11, 0, -1))
    assert codegen.split_firsts(112) == [14, 12, 10, 8, 6, 4, 2]
    assert codegen.split_firsts(176) == [16, 14, 12, 10, 8, 6, 4, 2]
    assert codegen.split_firsts(192) == [16, 8]  # starts at 0 or 64 of a scale block
    for block_n in range(8, 257, 8):  # against the tile starts themselves
        starts = {i * block_n % 128 for i in range(4096 // block_n)}
        assert set(codegen.split_firsts(block_n)) == {min(block_n, 128 - s) // 8 for s in starts}
    src = codegen.gemm_source(Sm90GemmConfig(128, 192, 4, 132))
    assert "#define SPLIT_FIRSTS(X) X(16) X(8)\n" in src.code


def test_bf16_takes_wide_tiles_without_promotion_registers():
    cfg = heuristics.choose(4096, 7168, 7168, H100_SMS, dtype="bf16").config
    assert cfg.dtype == "bf16" and cfg.block_n > 128
    assert heuristics.legal(128, 256, 1, "bf16") is None
    assert heuristics.legal(128, 256, 1, "fp8") is not None
    small = heuristics.choose(64, 2112, 7168, H100_SMS, dtype="bf16").config
    assert small.block_m == 64 and small.split_k > 1


def test_grouped_configs_take_large_tiles_and_no_split():
    for dtype in ("fp8", "bf16"):
        cfg = heuristics.choose(32768, 4096, 7168, H100_SMS, dtype=dtype, grouped=True).config
        # the dense kernel's tile for this size (FP8: two 64-row sub-tiles per math warpgroup)
        dense = heuristics.choose(32768, 4096, 7168, H100_SMS, dtype=dtype).config
        assert cfg.grouped and cfg.split_k == 1
        assert (cfg.block_m, cfg.block_n) == (dense.block_m, dense.block_n)
        assert cfg.block_m == 256 or dtype == "bf16"
        small = heuristics.choose(64, 4096, 7168, H100_SMS, dtype=dtype, grouped=True).config
        assert small.split_k == 1
        assert heuristics.smem_bytes(cfg) <= heuristics.SMEM_LIMIT
        src = codegen.gemm_source(cfg)
        assert "#define GROUPED 1" in src.code and src.entry.startswith("sm90_m_grouped_")


def test_masked_configs_use_every_sm_and_compile_masked():
    cfg = heuristics.choose(4 * 256, 4096, 7168, H100_SMS, grouped=True, masked=True).config
    assert cfg.masked and cfg.grouped and cfg.num_sms == H100_SMS and cfg.split_k == 1
    src = codegen.gemm_source(cfg)
    assert "#define GROUPED 2" in src.code and src.entry == "sm90_m_grouped_masked_fp8_gemm_1d2d"


def test_variant_entries_and_defines():
    base = Sm90GemmConfig(128, 128, 4, 132)
    cases = {
        attrs.evolve(base, sfb_rows=True, out_f32=True, with_c=True):
            ("sm90_fp8_gemm_1d1d_f32_acc", ("#define SFB_ROWS 1", "#define OUT_F32 1",
                                             "#define WITH_C 1", "#define GROUPED 0")),
        attrs.evolve(base, k_grouped=True, sfb_rows=True, out_f32=True):
            ("sm90_k_grouped_fp8_gemm_1d1d_f32", ("#define GROUPED 3", "#define WITH_C 0")),
        attrs.evolve(base, dtype="bf16", k_grouped=True, out_f32=True, with_c=True):
            ("sm90_k_grouped_bf16_gemm_f32_acc", ("#define IS_FP8 0", "#define GROUPED 3")),
        attrs.evolve(base, grouped=True, masked=True, sfb_rows=True):
            ("sm90_m_grouped_masked_fp8_gemm_1d1d", ("#define GROUPED 2", "#define SFB_ROWS 1")),
    }
    for cfg, (entry, defines) in cases.items():
        src = codegen.gemm_source(cfg)
        assert src.entry == entry and f"#define KERNEL_NAME {entry}" in src.code
        for define in defines:
            assert define in src.code, (cfg, define)
    # the grid size is a launch parameter: configs differing only by it share one source
    assert codegen.gemm_source(base).code == codegen.gemm_source(attrs.evolve(base, num_sms=77)).code


def test_bad_variants_are_refused():
    with pytest.raises(ValueError, match="FP8 recipe"):
        Sm90GemmConfig(128, 128, 4, 132, dtype="bf16", sfb_rows=True)
    with pytest.raises(ValueError, match="FP32"):
        Sm90GemmConfig(128, 128, 4, 132, k_grouped=True)


def test_epilogue_and_shared_memory_follow_the_variant():
    """FP32 D or a C skip the staged tile; 1d1d adds each stage's B scales, 128-byte aligned."""
    tma = Sm90GemmConfig(128, 128, 4, 132)
    direct = attrs.evolve(tma, out_f32=True)
    narrow = Sm90GemmConfig(128, 120, 4, 132)  # not a multiple of 64: one unswizzled TMA box
    assert (tma.epilogue, direct.epilogue, narrow.epilogue) == ("tma", "direct", "tma")
    assert attrs.evolve(tma, with_c=True).epilogue == "direct"
    # M-grouped: TMA store for tiles whose rows are all written, the threads' stores from the
    # same staging otherwise, so the buffer is the same size
    grouped = attrs.evolve(tma, grouped=True)
    assert grouped.epilogue == "mixed" and attrs.evolve(narrow, grouped=True).epilogue == "mixed"
    assert heuristics.smem_bytes(grouped) == heuristics.smem_bytes(tma)
    assert heuristics.smem_bytes(narrow) - heuristics.smem_bytes(attrs.evolve(narrow, with_c=True)) \
        == 128 * 120 * 2
    assert heuristics.legal(256, 192, 1, "bf16") is None
    assert heuristics.legal(256, 192, 1, "bf16", grouped=True) is not None  # spills (nvcc 13.0)
    # 128 x 128 BF16 staging (32 KiB) is what the direct epilogue saves
    assert heuristics.smem_bytes(tma) - heuristics.smem_bytes(direct) == 128 * 128 * 2
    # 1d1d: 120 columns of FP32 scales = 480 bytes, padded to 512, per stage, where 1d2d has
    # 16 bytes for its block scales
    rows = attrs.evolve(narrow, sfb_rows=True)
    assert heuristics.smem_bytes(rows) - heuristics.smem_bytes(narrow) == 4 * (512 - 16)
    assert heuristics.stages_for(direct, 7168) >= heuristics.stages_for(tma, 7168)


def test_1d1d_caps_block_n_and_k_grouped_counts_every_group():
    assert heuristics.legal(128, 168, 1, "fp8", sfb_rows=True) is not None
    assert heuristics.legal(128, 160, 1, "fp8", sfb_rows=True) is None
    cfg = heuristics.choose(4096, 7168, 7168, H100_SMS, sfb_rows=True, out_f32=True,
                            with_c=True).config
    assert cfg.block_n <= heuristics.MAX_BLOCK_N_SFB_ROWS and cfg.sfb_rows and cfg.with_c
    # 4 groups of a 256 x 384 weight gradient: one 128 x 192 tile layout gives 2 x 2 tiles per
    # group, 16 in all; the work units must count all four groups
    choice = heuristics.choose(256, 384, 2048, H100_SMS, k_grouped=True, sfb_rows=True,
                               out_f32=True, batch=4)
    c = choice.config
    per_group = -(-256 // c.block_m) * -(-384 // c.block_n)
    assert choice.figures["work_units"] == 4 * per_group * c.split_k
    assert c.num_sms == min(H100_SMS, 4 * per_group * c.split_k)


def test_bf16_large_problems_keep_a_ring_of_three_or_more():
    # measured on an H200 (benchmarks/NOTES.md): 256 x 176 with a ring of 2, the cost model's
    # old favourite, ran 1.2x slower than 128 x 256 with 3 at 4096 x 4096 x 7168
    for n, k in ((4096, 7168), (7168, 2048), (7168, 16384), (24576, 1536), (32768, 512)):
        choice = heuristics.choose(4096, n, k, H100_SMS, dtype="bf16")
        assert choice.config.stages >= heuristics.MIN_RING, (n, k, choice.config)
        for cfg, _, _ in choice.alternatives:
            assert cfg.stages >= heuristics.MIN_RING
    cfg = heuristics.choose(4096, 4096, 7168, H100_SMS, dtype="bf16").config
    assert (cfg.block_m, cfg.block_n, cfg.epilogue) == (128, 256, "tma")
    # with K of 2 blocks a ring of 2 holds all of it: still allowed
    short = heuristics.choose(4096, 4096, 128, H100_SMS, dtype="bf16")
    assert short.config.stages >= 2


def test_inflight_is_picked_for_bf16_single_sub_tiles_with_deep_rings_only():
    assert heuristics.inflight_pays("bf16", 64, 8) and heuristics.inflight_pays("bf16", 128, 4)
    assert not heuristics.inflight_pays("bf16", 128, 3)
    assert not heuristics.inflight_pays("bf16", 256, 8)
    assert not heuristics.inflight_pays("fp8", 64, 8)
    small = heuristics.choose(64, 4096, 7168, H100_SMS, dtype="bf16").config
    assert small.inflight and small.block_m == 64 and small.stages >= 4
    assert "#define INFLIGHT 1" in codegen.gemm_source(small).code
    assert "#define INFLIGHT 0" in codegen.gemm_source(heuristics.choose(
        64, 4096, 7168, H100_SMS).config).code  # FP8, 32 columns
    for m in (128, 4096):  # FP8: kpair and 256-row tiles
        assert not heuristics.choose(m, 7168, 2048, H100_SMS).config.inflight


def test_fp8_inflight_for_small_m_tiles_of_64_or_128_columns():
    """Hand-checked against the forced A/B that set the rule (H200, M <= 128)."""
    pays = heuristics.fp8_inflight_pays
    assert pays(64, 64, 64, 8, kpair=False, sfb_rows=False, grouped=False)
    assert pays(128, 128, 128, 8, kpair=False, sfb_rows=False, grouped=False)
    assert not pays(64, 32, 64, 8, kpair=False, sfb_rows=False, grouped=False)  # measured -3.5%
    assert not pays(64, 104, 64, 8, kpair=False, sfb_rows=False, grouped=False)  # -13%
    assert not pays(128, 128, 256, 8, kpair=False, sfb_rows=False, grouped=False)  # M > 128
    assert not pays(64, 128, 128, 8, kpair=True, sfb_rows=False, grouped=False)
    assert not pays(64, 64, 64, 8, kpair=False, sfb_rows=True, grouped=False)
    assert not pays(64, 64, 64, 8, kpair=False, sfb_rows=False, grouped=True)
    assert not pays(64, 64, 64, 2, kpair=False, sfb_rows=False, grouped=False)  # one stage each
    picks = {(m, n, k): heuristics.choose(m, n, k, H100_SMS)
             for m, n, k in ((1, 7168, 2048), (64, 7168, 2048), (128, 2112, 7168),
                             (64, 4096, 7168), (128, 7168, 2048), (4096, 7168, 2048))}
    # 64 x 64, 64 x 64 and 128 x 64 split 4 take it; 64 x 32, kpair 64 x 128 and 256 x 128 do not
    assert [picks[s].config.inflight for s in picks] == [True, True, True, False, False, False]
    assert "#define INFLIGHT 1" in codegen.gemm_source(picks[(64, 7168, 2048)].config).code
    # not credited in the score: the prediction is the tile's without inflight
    cfg = picks[(64, 7168, 2048)].config
    plain, *_ = heuristics.estimate_ns(64, 7168, 2048, H100_SMS, cfg.block_m, cfg.block_n,
                                       cfg.split_k, tma_store=True, stages=cfg.stages)
    credited, *_ = heuristics.estimate_ns(64, 7168, 2048, H100_SMS, cfg.block_m, cfg.block_n,
                                          cfg.split_k, tma_store=True, stages=cfg.stages,
                                          inflight=True)
    assert credited < plain
    assert picks[(64, 7168, 2048)].figures["predicted_us"] == round(plain / 1e3, 2)
    masked = heuristics.choose(64, 7168, 2048, H100_SMS, grouped=True, masked=True).config
    assert not masked.inflight


def test_inflight_rules(monkeypatch):
    with pytest.raises(ValueError, match="inflight"):
        Sm90GemmConfig(128, 128, 2, 132, dtype="bf16", inflight=True)
    # FP8: two partial accumulators, so one sub-tile per warpgroup and at most 128 columns
    assert Sm90GemmConfig(128, 128, 4, 132, inflight=True).inflight
    assert Sm90GemmConfig(64, 120, 8, 132, grouped=True, masked=True, inflight=True).inflight
    for bad in (dict(block_m=256), dict(block_n=136), dict(block_m=64, kpair=True),
                dict(sfb_rows=True)):
        fields = {"block_m": 128, "block_n": 128, **bad}
        with pytest.raises(ValueError, match="FP8 inflight"):
            Sm90GemmConfig(fields.pop("block_m"), fields.pop("block_n"), 4, 132, inflight=True,
                           **fields)
    monkeypatch.setenv("DGREG_SM90_CONFIG", "block_m=256,block_n=128,inflight=1")
    with pytest.raises(ValueError, match=r"DGREG_SM90_CONFIG.*inflight"):
        heuristics.choose(4096, 4096, 7168, H100_SMS)
    monkeypatch.setenv("DGREG_SM90_CONFIG", "block_m=128,block_n=128,inflight=1")
    cfg = heuristics.choose(4096, 4096, 7168, H100_SMS).config
    assert cfg.inflight and "inflight" in repr(cfg)
    assert "#define INFLIGHT 1" in codegen.gemm_source(cfg).code
    cfg = heuristics.choose(64, 4096, 7168, H100_SMS, dtype="bf16").config
    assert cfg.inflight and "inflight" in repr(cfg)


def test_dense_fp8_at_large_m_is_scored_by_the_fit_of_its_measured_tiles():
    """Hand-checked against the forced runs the fit was made on (H200, 132 SMs): at 4096 x 2112
    x 7168, 128 x 192 (352 tiles, 3 waves) ran 103.2 us, 256 x 88 (384 tiles, 3 waves) 115.1 and
    256 x 128 (272 tiles: 3 waves, the last of 8) 136.2; on the other M = 4096 shapes 256 x 128
    ran fastest."""
    assert heuristics.large_fp8("fp8", 128, 4096, False, False, False)
    assert not heuristics.large_fp8("fp8", 64, 4096, False, False, False)  # 64 rows
    assert not heuristics.large_fp8("fp8", 128, 512, False, False, False)  # few m-blocks
    assert not heuristics.large_fp8("bf16", 128, 4096, False, False, False)
    assert not heuristics.large_fp8("fp8", 128, 4096, True, False, False)  # grouped
    assert not heuristics.large_fp8("fp8", 128, 4096, False, True, False)  # 1d1d
    assert not heuristics.large_fp8("fp8", 128, 4096, False, False, True)  # FP32 D or C
    cfg = heuristics.choose(4096, 2112, 7168, 132).config
    assert (cfg.block_m, cfg.block_n) == (128, 192)
    times = {(bm, bn): heuristics.estimate_ns(4096, 2112, 7168, 132, bm, bn, 1,
                                              large_fp8=True)[0]
             for bm, bn in ((128, 192), (256, 88), (256, 128))}
    assert times[128, 192] < times[256, 88] < times[256, 128]
    for n, k in ((24576, 1536), (32768, 512), (7168, 16384), (4096, 7168), (7168, 2048)):
        cfg = heuristics.choose(4096, n, k, 132).config
        assert (cfg.block_m, cfg.block_n) == (256, 128), (n, k, cfg)
    # the masked K = 2048 picks keep the general model (the fit would move them to 256 x 128)
    masked = heuristics.choose(1024, 7168, 2048, 132, grouped=True, masked=True).config
    assert (masked.block_m, masked.block_n) == (256, 112)


def test_the_fit_takes_the_narrower_tile_when_it_fills_the_last_wave_better():
    """Hand-checked against forced runs on an H200 (132 SMs): at 1024 x 7168 x 2048, 256 x 112
    (256 tiles: two waves, the last 94% full) ran 30.2 us and 256 x 128 (224 tiles: the last
    wave 70% full) 31.1; at 1024 x 7168 x 16384 194.6 against 203.4. The fit scores the two
    within 4% but not within FIT_TIE_MARGIN, so the tie rule, which takes the larger tile, no
    longer applies; the general model's window stays TIE_MARGIN."""
    assert heuristics.FIT_TIE_MARGIN < heuristics.TIE_MARGIN
    for k in (2048, 16384):
        ns = {bn: heuristics.estimate_ns(1024, 7168, k, 132, 256, bn, 1, large_fp8=True)[0]
              for bn in (112, 128)}
        assert ns[112] < ns[128] <= ns[112] * heuristics.TIE_MARGIN, (k, ns)
        assert ns[128] > ns[112] * heuristics.FIT_TIE_MARGIN, (k, ns)
        cfg = heuristics.choose(1024, 7168, k, 132).config
        assert (cfg.block_m, cfg.block_n) == (256, 112), (k, cfg)


def test_kpair_is_picked_for_fp8_64_row_tiles_over_two_or_more_m_blocks():
    assert heuristics.kpair_pays("fp8", 64, 128, False)
    assert not heuristics.kpair_pays("fp8", 64, 64, False)  # B streams once from HBM
    assert not heuristics.kpair_pays("fp8", 128, 128, False)
    assert not heuristics.kpair_pays("bf16", 64, 128, False)
    assert not heuristics.kpair_pays("fp8", 64, 128, True)
    cfg = heuristics.choose(128, 7168, 2048, H100_SMS).config
    assert cfg.kpair and cfg.block_m == 64 and cfg.threads == 384 and "kpair" in repr(cfg)
    assert "#define KPAIR 1" in codegen.gemm_source(cfg).code
    assert not heuristics.choose(64, 7168, 2048, H100_SMS).config.kpair
    assert "#define KPAIR 0" in codegen.gemm_source(heuristics.choose(
        64, 7168, 2048, H100_SMS).config).code
    plain = attrs.evolve(cfg, kpair=False)
    # the second warpgroup's FP32 totals pass through shared memory
    assert heuristics.smem_bytes(cfg) - heuristics.smem_bytes(plain) == 64 * cfg.block_n * 4
    assert heuristics.stages_for(cfg, 7168) < heuristics.stages_for(plain, 7168)


def test_kpair_rules_and_forced_kpair(monkeypatch):
    for bad in (dict(dtype="bf16"), dict(grouped=True), dict(multicast="a")):
        with pytest.raises(ValueError, match="kpair"):
            Sm90GemmConfig(64, 128, 4, 132, kpair=True, **bad)
    with pytest.raises(ValueError, match="kpair"):
        Sm90GemmConfig(128, 128, 4, 132, kpair=True)
    monkeypatch.setenv("DGREG_SM90_CONFIG", "block_m=64,block_n=96,split_k=2,kpair=1")
    cfg = heuristics.choose(64, 2112, 7168, H100_SMS).config
    assert cfg.kpair and cfg.split_k == 2 and cfg.block_n == 96
    monkeypatch.setenv("DGREG_SM90_CONFIG", "block_m=128,block_n=96,kpair=1")
    with pytest.raises(ValueError, match=r"DGREG_SM90_CONFIG.*kpair"):
        heuristics.choose(128, 2112, 7168, H100_SMS)


def test_the_tma_store_epilogue_is_cheaper_than_the_synchronous_one():
    args = (4096, 32768, 512, H100_SMS, 256, 128, 1, "bf16")
    tma, *_ = heuristics.estimate_ns(*args, tma_store=True)
    staged, *_ = heuristics.estimate_ns(*args)
    assert tma < staged


# -- TMA multicast over 2-CTA clusters ---------------------------------------------------------


@pytest.mark.parametrize(("m", "n", "k"), [(64, 2112, 7168), (128, 7168, 2048), (4096, 4096, 7168),
                                           (4096, 7168, 16384), (256, 7168, 7168)])
@pytest.mark.parametrize("dtype", ["fp8", "bf16"])
def test_multicast_is_scored_but_not_picked(m, n, k, dtype):
    """Measured slower than the same tile without it (MULTICAST_COST): the model never
    prefers it; the same tile with multicast is scored slower (by the coupling, and by the
    spare CTA of an odd block count)."""
    choice = heuristics.choose(m, n, k, H100_SMS, dtype=dtype)
    cfg = choice.config
    assert cfg.multicast == "" and cfg.cluster == 1
    args = (m, n, k, H100_SMS, cfg.block_m, cfg.block_n, cfg.split_k, dtype)
    plain, *_ = heuristics.estimate_ns(*args, inflight=cfg.inflight)
    shared, *_ = heuristics.estimate_ns(*args, inflight=cfg.inflight, multicast="a")
    assert plain < shared


def test_multicast_units_round_odd_block_counts_up_to_pairs():
    # 3 x 5 tiles of 128 x 128: pairs of n-blocks (a) make 3 x 6 units, of m-blocks (b) 4 x 5
    variant = Sm90GemmConfig(128, 128, 4, H100_SMS)
    assert heuristics._units(384, 640, attrs.evolve(variant, multicast="a"), 1) == 18
    assert heuristics._units(384, 640, attrs.evolve(variant, multicast="b"), 1) == 20
    assert heuristics._units(384, 640, variant, 1) == 15


def test_forced_multicast(monkeypatch):
    with config.scope():
        monkeypatch.setenv("DGREG_SM90_CONFIG", "block_m=128,block_n=128,multicast=b")
        cfg = heuristics.choose(384, 640, 1024, 131).config  # an odd SM count
        assert (cfg.multicast, cfg.cluster, cfg.num_sms) == ("b", 2, 20)
        cfg = heuristics.choose(4096, 7168, 7168, 131).config
        assert cfg.num_sms == 130  # whole clusters
        # alone, multicast keeps the heuristics' tile choice
        monkeypatch.delenv("DGREG_SM90_CONFIG")
        plain = heuristics.choose(4096, 4096, 7168, H100_SMS).config
        monkeypatch.setenv("DGREG_SM90_CONFIG", "multicast=a")
        forced = heuristics.choose(4096, 4096, 7168, H100_SMS).config
        assert forced.multicast == "a"
        assert (forced.block_m, forced.block_n) == (plain.block_m, plain.block_n)
        monkeypatch.setenv("DGREG_SM90_CONFIG", "multicast=0")
        assert heuristics.choose(4096, 4096, 7168, H100_SMS).config == plain
        for bad, why in (("block_m=64,block_n=128,multicast=b", "one m-block"),
                         ("block_m=128,block_n=120,multicast=b", "multiple of 16"),
                         ("block_m=128,block_n=4096,multicast=a", "not a legal"),
                         ("multicast=c", "must look like")):
            monkeypatch.setenv("DGREG_SM90_CONFIG", bad)
            with pytest.raises(ValueError, match=why):
                heuristics.choose(64, 4096, 1024, H100_SMS)
        monkeypatch.setenv("DGREG_SM90_CONFIG", "block_m=128,block_n=128,multicast=b")
        with pytest.raises(ValueError, match="grouped kernels multicast A only"):
            heuristics.choose(1024, 4096, 1024, H100_SMS, grouped=True)
        monkeypatch.setenv("DGREG_SM90_CONFIG", "block_m=128,block_n=128,multicast=a")
        assert heuristics.choose(1024, 4096, 1024, H100_SMS, masked=True).config.multicast == "a"


def test_forced_grid_size(monkeypatch):
    with config.scope():
        # 512 tiles of 256 x 128 at 4096 x 4096: the persistent grid (launched as num_sms
        # CTAs) as asked, four whole rounds of 128
        monkeypatch.setenv("DGREG_SM90_CONFIG", "block_m=256,block_n=128,stages=3,sms=128")
        cfg = heuristics.choose(4096, 4096, 7168, H100_SMS).config
        assert (cfg.block_m, cfg.block_n, cfg.num_sms) == (256, 128, 128)
        for bad in ("block_m=256,block_n=128,sms=133", "block_m=256,block_n=128,sms=0",
                    "block_m=128,block_n=128,multicast=a,sms=127"):
            monkeypatch.setenv("DGREG_SM90_CONFIG", bad)
            with pytest.raises(ValueError, match="sms="):
                heuristics.choose(4096, 4096, 7168, H100_SMS)


def test_epilogue_rows_follow_the_kernels_writer_groups():
    """Two math warpgroups on an unsplit tile each stage and store their own rows (the
    kernel's WG_EPI), M-grouped ones too; split-K and KPAIR tiles are written as a whole."""
    assert Sm90GemmConfig(256, 128, 3, 132).epilogue_rows == 128
    assert Sm90GemmConfig(128, 96, 4, 132, dtype="bf16").epilogue_rows == 64
    assert Sm90GemmConfig(256, 128, 3, 132, grouped=True, masked=True).epilogue_rows == 128
    assert Sm90GemmConfig(64, 128, 4, 132).epilogue_rows == 64  # one warpgroup
    assert Sm90GemmConfig(64, 128, 4, 132, kpair=True).epilogue_rows == 64
    assert Sm90GemmConfig(128, 128, 4, 132, split_k=2).epilogue_rows == 128
    assert Sm90GemmConfig(256, 128, 3, 132, grouped=True).epilogue_rows == 128
    assert "#define EPI_ROWS 128\n" in codegen.gemm_source(Sm90GemmConfig(256, 128, 3, 132)).code


def test_multicast_config_rules_and_source():
    with pytest.raises(ValueError, match="multicast must be one of"):
        Sm90GemmConfig(128, 128, 4, 132, multicast="x")
    with pytest.raises(ValueError, match="multiple of 16"):
        Sm90GemmConfig(128, 120, 4, 132, multicast="b")
    with pytest.raises(ValueError, match="A only"):
        Sm90GemmConfig(128, 128, 4, 132, grouped=True, multicast="b")
    with pytest.raises(ValueError, match="even number"):
        Sm90GemmConfig(128, 128, 4, 131, multicast="a")
    cfg = Sm90GemmConfig(128, 128, 4, 132, multicast="b")
    assert "multicast=b" in repr(cfg)
    assert "#define MULTICAST 2\n" in codegen.gemm_source(cfg).code
    assert "#define MULTICAST 0\n" in codegen.gemm_source(attrs.evolve(cfg, multicast="")).code
