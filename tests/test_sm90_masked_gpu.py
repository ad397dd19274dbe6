"""The sm90 plugin's masked M-grouped kernels (MoE decode) on a Hopper GPU, CUDA graphs too."""

from __future__ import annotations

import pytest
import torch

import dgreg
from dgreg.reference import dequantize_1d2d

pytestmark = [pytest.mark.gpu, pytest.mark.usefixtures("sm90_gpu")]


def _inputs(dtype, groups, m_max, n, k, seed):
    gen = torch.Generator(device="cuda").manual_seed(seed)
    a = torch.randn(groups, m_max, k, device="cuda", dtype=torch.bfloat16, generator=gen)
    b = torch.randn(groups, n, k, device="cuda", dtype=torch.bfloat16, generator=gen)
    if dtype == "bf16":
        return a, b, {}, a.double(), b.double()
    pa = [dgreg.per_token_cast_to_fp8(a[g]) for g in range(groups)]
    pb = [dgreg.per_block_cast_to_fp8(b[g]) for g in range(groups)]
    a8, a_sf = torch.stack([p[0] for p in pa]), torch.stack([p[1] for p in pa])
    b8, b_sf = torch.stack([p[0] for p in pb]), torch.stack([p[1] for p in pb])
    return (a8, b8, {"a_scale": a_sf, "b_scale": b_sf}, *dequantize_1d2d(a8, a_sf, b8, b_sf))


def _check(d, a_ref, b_ref, masked, dtype):
    for g, rows in enumerate(masked.tolist()):
        assert d[g, rows:].isnan().all(), f"group {g}: rows past masked_m were written"
        if rows:
            got, want = d[g, :rows].double(), a_ref[g, :rows] @ b_ref[g].T
            assert not got.isnan().any()
            assert dgreg.calc_diff(got, want) < (1e-3 if dtype == "fp8" else 1e-5)
            assert (got - want).abs().max().item() <= 2 ** -6 * want.abs().max().item() + 1e-2


@pytest.mark.parametrize(("dtype", "mn_major"), [("fp8", False), ("fp8", True), ("bf16", False)])
@pytest.mark.parametrize(("groups", "m_max", "n", "k", "counts"), [
    (4, 256, 4096, 7168, [256, 0, 77, 200]),
    (1, 1024, 2112, 2048, [1000]),
    (6, 200, 520, 1920, [0, 0, 1, 199, 200, 64]),
])
def test_masked_matches_float64(dtype, mn_major, groups, m_max, n, k, counts):
    """A's FP8 scales row-major (copied by the call) or MN-major and TMA-aligned as
    ``get_mn_major_tma_aligned_tensor`` lays them out (read in place)."""
    a, b, scales, a_ref, b_ref = _inputs(dtype, groups, m_max, n, k, groups + m_max + n)
    if mn_major:
        scales["a_scale"] = dgreg.get_mn_major_tma_aligned_tensor(scales["a_scale"])
    masked = torch.tensor(counts, dtype=torch.int32, device="cuda")
    res = dgreg.explain(f"m_grouped_{dtype}_gemm_masked",
                        dgreg.Problem(m_max, n, k, groups, expected_m=max(counts) or 1), file=None)
    assert res.chosen.plugin == "sm90", str(res)
    d = torch.full((groups, m_max, n), float("nan"), device="cuda", dtype=torch.bfloat16)
    dgreg.m_grouped_gemm_masked(a, b, d, masked_m=masked, expected_m=max(counts) or 1, **scales)
    torch.cuda.synchronize()
    _check(d, a_ref, b_ref, masked, dtype)


@pytest.mark.parametrize("mn_major", [False, True])
def test_masked_graph_replays_with_changing_masks(mn_major):
    groups, m_max, n, k = 4, 256, 2048, 1024
    a, b, scales, a_ref, b_ref = _inputs("fp8", groups, m_max, n, k, 7)
    if mn_major:  # read in place; row-major scales are copied inside the captured call
        scales["a_scale"] = dgreg.get_mn_major_tma_aligned_tensor(scales["a_scale"])
    masked = torch.tensor([256, 10, 0, 128], dtype=torch.int32, device="cuda")
    d = torch.full((groups, m_max, n), float("nan"), device="cuda", dtype=torch.bfloat16)
    call = lambda: dgreg.m_grouped_gemm_masked(a, b, d, masked_m=masked, expected_m=128,  # noqa: E731
                                               **scales)
    call()  # warm up: compile, load, plan
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        call()
    for counts in ([1, 2, 3, 4], [256, 256, 256, 256], [0, 0, 0, 0], [100, 0, 255, 17]):
        masked.copy_(torch.tensor(counts, dtype=torch.int32))
        d.fill_(float("nan"))
        graph.replay()
        torch.cuda.synchronize()
        _check(d, a_ref, b_ref, masked, "fp8")
