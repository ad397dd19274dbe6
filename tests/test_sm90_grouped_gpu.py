"""The sm90 plugin's M-grouped contiguous kernels (MoE) on a Hopper GPU."""

from __future__ import annotations

import pytest
import torch

import dgreg
from dgreg.reference import dequantize_1d2d

pytestmark = [pytest.mark.gpu, pytest.mark.usefixtures("sm90_gpu")]


def _layout(sizes: list[int]) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Per-row ids (-1 padding, each expert padded to 128 rows) and prefix-sum end offsets."""
    ids, ends, row = [], [], 0
    for g, size in enumerate(sizes):
        padded = -(-size // 128) * 128
        ids += [g] * size + [-1] * (padded - size)
        ends.append(row + size)
        row += padded
    as_tensor = lambda v: torch.tensor(v, dtype=torch.int32, device="cuda")  # noqa: E731
    return as_tensor(ids), as_tensor(ends), row


@pytest.mark.parametrize("dtype", ["fp8", "bf16"])
@pytest.mark.parametrize("psum", [False, True])
@pytest.mark.parametrize("sizes", [[300, 0, 77, 128], [5], [1024, 1024, 512, 900]])
@pytest.mark.parametrize(("n", "k"), [(4096, 7168), (520, 1920)])
def test_m_grouped_contiguous_matches_float64(dtype, psum, sizes, n, k):
    gen = torch.Generator(device="cuda").manual_seed(sum(sizes) + n + k)
    ids, ends, m = _layout(sizes)
    groups = len(sizes)
    a = torch.randn(m, k, device="cuda", dtype=torch.bfloat16, generator=gen)
    b = torch.randn(groups, n, k, device="cuda", dtype=torch.bfloat16, generator=gen)
    kwargs = {"grouped_layout": ends if psum else ids, "use_psum_layout": psum}
    if dtype == "fp8":
        a, a_sf = dgreg.per_token_cast_to_fp8(a)
        pairs = [dgreg.per_block_cast_to_fp8(b[g]) for g in range(groups)]
        b = torch.stack([p[0] for p in pairs])
        b_sf = torch.stack([p[1] for p in pairs])
        kwargs.update(a_scale=a_sf, b_scale=b_sf)
        a_ref, b_ref = dequantize_1d2d(a, a_sf, b, b_sf)
    else:
        a_ref, b_ref = a.double(), b.double()
    op = f"m_grouped_{dtype}_gemm_contiguous"
    res = dgreg.explain(op, dgreg.Problem(m, n, k, groups), file=None)
    assert res.chosen.plugin == "sm90", str(res)
    d = torch.full((m, n), float("nan"), device="cuda", dtype=torch.bfloat16)
    dgreg.m_grouped_gemm_contiguous(a, b, d, **kwargs)
    torch.cuda.synchronize()
    valid = ids >= 0
    assert d[~valid].isnan().all(), "padding rows must stay untouched"
    assert not d[valid].isnan().any(), "rows of an expert must all be written"
    ref = torch.zeros(m, n, dtype=torch.float64, device="cuda")
    for g in range(groups):
        rows = ids == g
        ref[rows] = a_ref[rows] @ b_ref[g].T
    got = d[valid].double()
    want = ref[valid]
    if want.numel():
        assert dgreg.calc_diff(got, want) < (1e-3 if dtype == "fp8" else 1e-5)
        assert (got - want).abs().max().item() <= 2 ** -6 * want.abs().max().item() + 1e-2
