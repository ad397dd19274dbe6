"""The sm90 plugin's heuristics and code generation, on the CPU."""

from __future__ import annotations

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
    assert heuristics.smem_bytes(bf16.block_m, bf16.block_n, bf16.stages) <= heuristics.SMEM_LIMIT
    assert heuristics.smem_bytes(cfg.block_m, cfg.block_n, cfg.stages) <= heuristics.SMEM_LIMIT
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
                   f"#define SMEM_REQUESTED {codegen.smem_bytes(Sm90GemmConfig(128, 96, 5, 132, 3))}"):
        assert define in src.code
    assert set(src.headers) == set(codegen.HEADERS) and src.arch == "sm_90a"
    bf16 = codegen.gemm_source(Sm90GemmConfig(128, 256, 4, 132, 1, "bf16"))
    assert "#define IS_FP8 0" in bf16.code and bf16.entry == "sm90_bf16_gemm"


def test_bf16_takes_wide_tiles_without_promotion_registers():
    cfg = heuristics.choose(4096, 7168, 7168, H100_SMS, dtype="bf16").config
    assert cfg.dtype == "bf16" and cfg.block_n > 128
    assert heuristics.legal(128, 256, 1, "bf16") is None
    assert heuristics.legal(128, 256, 1, "fp8") is not None
    small = heuristics.choose(64, 2112, 7168, H100_SMS, dtype="bf16").config
    assert small.block_m == 64 and small.split_k > 1


def test_grouped_configs_stay_in_one_expert():
    for dtype in ("fp8", "bf16"):
        cfg = heuristics.choose(32768, 4096, 7168, H100_SMS, dtype=dtype, grouped=True).config
        assert cfg.grouped and cfg.block_m in (64, 128) and cfg.split_k == 1
        assert heuristics.smem_bytes(cfg.block_m, cfg.block_n, cfg.stages, True) <= \
            heuristics.SMEM_LIMIT
        src = codegen.gemm_source(cfg)
        assert "#define GROUPED 1" in src.code and src.entry.startswith("sm90_m_grouped_")


def test_masked_configs_use_every_sm_and_compile_masked():
    cfg = heuristics.choose(4 * 256, 4096, 7168, H100_SMS, grouped=True, masked=True).config
    assert cfg.masked and cfg.grouped and cfg.num_sms == H100_SMS and cfg.split_k == 1
    src = codegen.gemm_source(cfg)
    assert "#define GROUPED 2" in src.code and src.entry == "sm90_m_grouped_masked_fp8_gemm_1d2d"
