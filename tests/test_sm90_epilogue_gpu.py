"""The sm90 kernels' staged BF16 epilogue on a Hopper GPU: the TMA store of tiles of any width
(64-column swizzled chunks, or one unswizzled box when block_n is not a multiple of 64), and
the threads' 16-byte or element stores where the TMA may not store D (rows not 16-byte
aligned in a D the call allocates; M-grouped tiles with rows that must stay untouched)."""

from __future__ import annotations

import pytest
import torch
from test_sm90_coverage_gpu import _force as force_config
from test_sm90_coverage_gpu import _operands as operands

import dgreg
from dgreg.reference import dequantize_1d2d

pytestmark = [pytest.mark.gpu, pytest.mark.usefixtures("sm90_gpu")]

FORCED = ["block_m=64,block_n=88", "block_m=128,block_n=112", "block_m=256,block_n=40",
          "block_m=64,block_n=128", "block_m=128,block_n=104,split_k=2",
          "block_m=64,block_n=56,kpair=1"]


def _operands(dtype: str, m: int, n: int, k: int, seed: int):
    """((A, B), the scales as keywords, the float64 reference of the dequantised operands)."""
    gen = torch.Generator(device="cuda").manual_seed(seed)
    a, a_sf, b, b_sf = operands(m, n, k, dtype, "1d2d", gen)
    if dtype == "bf16":
        return (a, b), {}, a.double() @ b.double().T
    da, db = dequantize_1d2d(a, a_sf, b, b_sf)
    return (a, b), {"a_scale": a_sf, "b_scale": b_sf}, da @ db.T


def _compare(d: torch.Tensor, ref: torch.Tensor, dtype: str) -> None:
    assert not d.isnan().any(), "unwritten output elements"
    assert dgreg.calc_diff(d, ref) < (1e-3 if dtype == "fp8" else 1e-5)
    assert (d.double() - ref).abs().max().item() <= 2 ** -7 * ref.abs().max().item() + 1e-2


def _force(monkeypatch, forced: str, dtype: str) -> None:
    if "kpair" in forced and dtype == "bf16":
        pytest.skip("kpair is an FP8 kernel")
    force_config(monkeypatch, forced)


@pytest.mark.parametrize("forced", FORCED)
@pytest.mark.parametrize("dtype", ["fp8", "bf16"])
@pytest.mark.parametrize(("n", "width"), [(1000, 1000), (1000, 1024), (1004, 1008)])
def test_staged_epilogue_of_any_tile_width(dtype, forced, n, width, monkeypatch):
    """D passed packed, or as a view into wider rows (the map takes D's own row stride):
    every element written, none past N. N = 1000: TMA stores. N = 1004 (rows of 2008 bytes
    in 2016-byte ones): the threads' stores, since a TMA store writes whole 16-byte units
    and would write into the padding past N."""
    _force(monkeypatch, forced, dtype)
    m, k = 300, 640
    ops, kw, ref = _operands(dtype, m, n, k, seed=len(forced) + width)
    storage = torch.full((m, width), float("nan"), device="cuda", dtype=torch.bfloat16)
    d = storage[:, :n]
    for _ in range(2):  # split-K counters are reset for the second call
        dgreg.gemm(*ops, d, **kw)
        torch.cuda.synchronize()
        _compare(d, ref, dtype)
    assert storage[:, n:].isnan().all(), "columns past N written"


@pytest.mark.parametrize("forced", FORCED)
@pytest.mark.parametrize("dtype", ["fp8", "bf16"])
def test_unaligned_d_rows_are_written_by_the_threads(dtype, forced, monkeypatch):
    """N = 1004: a D the call allocates has 2008-byte rows, which the TMA may not address;
    the kernel writes them from the staging with element stores. D is poisoned through the
    caching allocator (a NaN block of the same size, freed just before the call)."""
    _force(monkeypatch, forced, dtype)
    m, n, k = 300, 1004, 640
    ops, kw, ref = _operands(dtype, m, n, k, seed=len(forced))
    dgreg.gemm(*ops, **kw)  # builds the plan, so that the next call allocates D first
    torch.cuda.synchronize()
    poison = torch.full((m, n), float("nan"), device="cuda", dtype=torch.bfloat16)
    address = poison.data_ptr()
    del poison
    d = dgreg.gemm(*ops, **kw)
    torch.cuda.synchronize()
    assert d.data_ptr() == address, "the caching allocator did not reuse the poisoned block"
    assert d.stride(0) == n
    _compare(d, ref, dtype)


@pytest.mark.parametrize("n", [1000, 1004])
@pytest.mark.parametrize("block_n", [112, 128])
def test_masked_tiles_mix_the_tma_store_and_the_threads_stores(n, block_n, monkeypatch):
    """Masked FP8: tiles wholly below masked_m leave by TMA, the others by the threads' stores,
    and rows past masked_m stay untouched (N = 1000: a NaN-poisoned D passed in). N = 1004: D
    allocated by the call (zeros; rows of 2008 bytes), written by the threads alone."""
    force_config(monkeypatch, f"block_m=128,block_n={block_n}")
    groups, m_max, k = 3, 384, 512
    gen = torch.Generator(device="cuda").manual_seed(n + block_n)
    a8, a_sf, b8, b_sf = operands(m_max, n, k, "fp8", "1d2d", gen, (groups,), (groups,))
    masked = torch.tensor([384, 0, 200], dtype=torch.int32, device="cuda")
    kw = dict(masked_m=masked, expected_m=200, a_scale=a_sf, b_scale=b_sf)
    if n % 8 == 0:
        d = torch.full((groups, m_max, n), float("nan"), device="cuda", dtype=torch.bfloat16)
        dgreg.m_grouped_gemm_masked(a8, b8, d, **kw)
        untouched = float("nan")
    else:
        d = dgreg.m_grouped_gemm_masked(a8, b8, **kw)
        untouched = 0.0
    torch.cuda.synchronize()
    for g, rows in enumerate(masked.tolist()):
        da, db = dequantize_1d2d(a8[g, :rows], a_sf[g, :rows], b8[g], b_sf[g])
        if rows:
            _compare(d[g, :rows], da @ db.T, "fp8")
        rest = d[g, rows:]
        kept = rest.isnan() if untouched != untouched else rest == untouched
        assert kept.all(), f"group {g}: rows past masked_m written"


@pytest.mark.parametrize("dtype", ["fp8", "bf16"])
@pytest.mark.parametrize(("out", "acc"), [(torch.float32, False), (torch.float32, True),
                                          (torch.bfloat16, True)])
def test_direct_epilogue_with_odd_row_strides(dtype, out, acc):
    """FP32 D, or a C, leave from registers in pairs of columns. A D the call allocates with
    an odd N (1001) has odd row strides, so its pairs are not 8- or 4-byte aligned: the kernel
    stores elements there. D is poisoned through the caching allocator, as above."""
    m, n, k = 129, 1001, 640
    ops, kw, ref = _operands(dtype, m, n, k, seed=n + int(acc))
    c = None
    if acc:  # a caller's C obeys the stride rule: rows padded to 16 bytes
        storage = torch.randn(m, 1008, device="cuda", dtype=out)
        c = storage[:, :n]
        ref = ref + c.double()
    dgreg.gemm(*ops, c=c, out_dtype=out, **kw)  # builds the plan
    torch.cuda.synchronize()
    poison = torch.full((m, n), float("nan"), device="cuda", dtype=out)
    address = poison.data_ptr()
    del poison
    d = dgreg.gemm(*ops, c=c, out_dtype=out, **kw)
    torch.cuda.synchronize()
    assert d.data_ptr() == address, "the caching allocator did not reuse the poisoned block"
    assert d.stride(0) == n and d.dtype == out
    res = dgreg.explain(f"{dtype}_gemm", (m, n, k), file=None, accumulate=acc,
                        d_dtype="float32" if out == torch.float32 else "bfloat16")
    assert res.chosen.plugin == "sm90" and res.choice.config.epilogue == "direct", str(res)
    _compare(d, ref, dtype)
