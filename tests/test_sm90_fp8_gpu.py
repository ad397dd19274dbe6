"""The sm90 plugin's FP8 1d2d kernel on a Hopper GPU, against a float64 reference."""

from __future__ import annotations

import pytest
import torch

import dgreg
from dgreg.reference import dequantize_1d2d

pytestmark = [pytest.mark.gpu, pytest.mark.usefixtures("sm90_gpu")]

SHAPES = [
    (1, 2112, 7168), (7, 256, 512), (64, 2112, 7168), (128, 24576, 1536), (129, 4096, 7168),
    (4096, 7168, 2048), (300, 576, 7296), (64, 120, 128), (2048, 7168, 16384), (256, 7168, 7168),
    (17, 8, 1040), (1000, 1000, 1024), (64, 7168, 16384), (1, 7168, 16384),
]


def _inputs(m, n, k, gen):
    a = torch.randn(m, k, device="cuda", dtype=torch.bfloat16, generator=gen)
    b = torch.randn(n, k, device="cuda", dtype=torch.bfloat16, generator=gen)
    a8, a_sf = dgreg.per_token_cast_to_fp8(a)
    b8, b_sf = dgreg.per_block_cast_to_fp8(b)
    return a8, a_sf, b8, b_sf


def _reference(a8, a_sf, b8, b_sf):
    a, b = dequantize_1d2d(a8, a_sf, b8, b_sf)
    return a @ b.T


@pytest.mark.parametrize(("m", "n", "k"), SHAPES)
def test_fp8_gemm_matches_float64(m, n, k):
    gen = torch.Generator(device="cuda").manual_seed(m * 7 + n * 13 + k)
    a8, a_sf, b8, b_sf = _inputs(m, n, k, gen)
    res = dgreg.explain("fp8_gemm", (m, n, k), file=None)
    assert res.chosen.kernel_id == "sm90.fp8_gemm", str(res)
    d = torch.full((m, n), float("nan"), device="cuda", dtype=torch.bfloat16)
    dgreg.gemm(a8, b8, d, a_scale=a_sf, b_scale=b_sf)
    torch.cuda.synchronize()
    assert not d.isnan().any(), "unwritten output elements"
    ref = _reference(a8, a_sf, b8, b_sf)
    diff = dgreg.calc_diff(d, ref)
    assert diff < 1e-3, f"calc_diff {diff:.2e}"
    scale = ref.abs().max().item()
    assert (d.double() - ref).abs().max().item() <= 2 ** -7 * scale + 1e-2


@pytest.mark.parametrize(("block_m", "block_n"), [(64, 136), (64, 152), (64, 176), (128, 192)])
def test_wide_tiles_straddling_three_scale_blocks(block_m, block_n, monkeypatch):
    """With block_n > 128 a tile can cover parts of three 128-wide B scale blocks."""
    from dgreg import dispatch

    m, n, k = 96, 1400, 640
    monkeypatch.setenv("DGREG_SM90_CONFIG", f"block_m={block_m},block_n={block_n}")
    dispatch.clear_caches()
    gen = torch.Generator(device="cuda").manual_seed(block_n)
    a8, a_sf, b8, b_sf = _inputs(m, n, k, gen)
    # very different scales per 128-column block make a wrong block choice visible
    b_sf = b_sf * torch.logspace(-3, 3, b_sf.shape[0], device="cuda").unsqueeze(1)
    ref = _reference(a8, a_sf, b8, b_sf)
    d = torch.full((m, n), float("nan"), device="cuda", dtype=torch.bfloat16)
    dgreg.gemm(a8, b8, d, a_scale=a_sf, b_scale=b_sf)
    col_scale = ref.abs().amax(dim=0).clamp_min(1e-30)
    assert ((d.double() - ref).abs() / col_scale).max().item() < 2 ** -6


@pytest.mark.parametrize("forced", ["block_m=64,block_n=64,split_k=4",
                                    "block_m=128,block_n=96,split_k=3",
                                    "block_m=256,block_n=64,split_k=2"])
@pytest.mark.parametrize(("m", "n", "k"), [(1, 200, 1152), (130, 520, 1920), (64, 2112, 7168)])
def test_split_k_matches_float64_and_resets_its_counters(m, n, k, forced, monkeypatch):
    monkeypatch.setenv("DGREG_SM90_CONFIG", forced)
    from dgreg import dispatch

    dispatch.clear_caches()
    gen = torch.Generator(device="cuda").manual_seed(m + n + k)
    a8, a_sf, b8, b_sf = _inputs(m, n, k, gen)
    ref = _reference(a8, a_sf, b8, b_sf)
    assert "split_k" in repr(dgreg.explain("fp8_gemm", (m, n, k), file=None).choice.config)
    for _ in range(3):  # a counter left non-zero would corrupt the next call
        d = torch.full((m, n), float("nan"), device="cuda", dtype=torch.bfloat16)
        dgreg.gemm(a8, b8, d, a_scale=a_sf, b_scale=b_sf)
        torch.cuda.synchronize()
        assert not d.isnan().any()
        assert dgreg.calc_diff(d, ref) < 1e-3


def test_scale_layouts_and_repeated_calls():
    m, n, k = 192, 640, 1024
    gen = torch.Generator(device="cuda").manual_seed(1)
    a8, a_sf, b8, b_sf = _inputs(m, n, k, gen)
    ref = _reference(a8, a_sf, b8, b_sf)
    for sfa in (a_sf, dgreg.get_mn_major_tma_aligned_tensor(a_sf)):
        for _ in range(3):  # the hot path reuses the plan
            d = torch.full((m, n), float("nan"), device="cuda", dtype=torch.bfloat16)
            dgreg.gemm(a8, b8, d, a_scale=sfa, b_scale=b_sf.t().contiguous().t())
            assert dgreg.calc_diff(d, ref) < 1e-3
