"""The sm90 kernels in 2-CTA clusters with TMA multicast, on a Hopper GPU, against the float64
reference: odd block counts (the spare CTA of the last pair only loads its half of the
shared tile), split-K, M = 1, FP32 D with C, BF16, and the grouped kernels (A multicast)."""

from __future__ import annotations

import pytest
import torch
from test_sm90_coverage_gpu import _check, _force, _operands, _resolved_config, contiguous_case

import dgreg
from dgreg import call as calls

pytestmark = [pytest.mark.gpu, pytest.mark.usefixtures("sm90_gpu")]


# (m, n, k, forced tile): block counts odd along the shared dimension's pairs, split-K, M = 1
DENSE = [
    (384, 640, 1024, "block_m=128,block_n=128"),  # 3 m-blocks, 5 n-blocks: a spare CTA either way
    (130, 520, 1920, "block_m=64,block_n=64,split_k=3"),
    (1, 200, 1152, "block_m=64,block_n=48,split_k=2"),
    (1000, 1000, 1024, "block_m=256,block_n=112"),
    (64, 2112, 7168, "block_m=64,block_n=64,split_k=4"),
]


@pytest.mark.parametrize("multicast", ["a", "b"])
@pytest.mark.parametrize(("m", "n", "k", "tile"), DENSE)
@pytest.mark.parametrize(("dtype", "recipe", "out", "acc"),
                         [("fp8", "1d2d", torch.bfloat16, False),
                          ("fp8", "1d1d", torch.float32, True),
                          ("bf16", None, torch.bfloat16, False)])
def test_dense_multicast(m, n, k, tile, multicast, dtype, recipe, out, acc, monkeypatch):
    if multicast == "b" and -(-m // int(tile.split(",")[0].split("=")[1])) < 2:
        pytest.skip("one m-block: no pair shares B")
    _force(monkeypatch, f"{tile},multicast={multicast}")
    gen = torch.Generator(device="cuda").manual_seed(m + n + k)
    a, a_sf, b, b_sf = _operands(m, n, k, dtype, recipe, gen)
    d = torch.empty(m, n, device="cuda", dtype=out)
    c = torch.randn(m, n, device="cuda", generator=gen) if acc else None
    kwargs = dict(c=c, a_scale=a_sf, b_scale=b_sf, recipe=recipe)
    call = calls.dense_call(a, b, d, **kwargs)
    assert _resolved_config(call).multicast == multicast
    for _ in range(2):  # split-K counters must be left at zero for the next call
        _check(call, lambda: dgreg.gemm(a, b, d, **kwargs), 1e-3 if dtype == "fp8" else 1e-5)


@pytest.mark.parametrize("dtype", ["fp8", "bf16"])
@pytest.mark.parametrize("tile", ["block_m=256,block_n=128", "block_m=128,block_n=80"])
def test_m_grouped_contiguous_multicast(dtype, tile, monkeypatch):
    """Pairs share A's rows, hence the expert, padding and two-expert passes of their tiles."""
    _force(monkeypatch, f"{tile},multicast=a")
    call, run = contiguous_case(dtype, n=400, seed=11)  # 5 n-blocks of 80: a spare CTA
    assert _resolved_config(call).multicast == "a"
    _check(call, run, 1e-3 if dtype == "fp8" else 1e-5)


@pytest.mark.parametrize("dtype", ["fp8", "bf16"])
def test_m_grouped_masked_multicast(dtype, monkeypatch):
    _force(monkeypatch, "block_m=128,block_n=112,multicast=a")
    groups, m_max, n, k = 4, 320, 560, 1024  # 5 n-blocks
    gen = torch.Generator(device="cuda").manual_seed(12)
    a, a_sf, b, b_sf = _operands(m_max, n, k, dtype, "1d2d", gen, (groups,), (groups,))
    d = torch.empty(groups, m_max, n, device="cuda", dtype=torch.bfloat16)
    for masked_m in ([320, 0, 65, 129], [0, 0, 0, 0], [1, 320, 200, 7]):
        masked = torch.tensor(masked_m, dtype=torch.int32, device="cuda")
        kwargs = dict(masked_m=masked, expected_m=160, a_scale=a_sf, b_scale=b_sf)
        call = calls.m_masked_call(a, b, d, **kwargs)
        assert _resolved_config(call).multicast == "a"
        _check(call, lambda kwargs=kwargs: dgreg.m_grouped_gemm_masked(a, b, d, **kwargs),
               1e-3 if dtype == "fp8" else 1e-5)


def test_k_grouped_multicast(monkeypatch):
    _force(monkeypatch, "block_m=128,block_n=64,multicast=a")
    ks, m, n = [256, 0, 512, 128], 256, 320  # 5 n-blocks
    gen = torch.Generator(device="cuda").manual_seed(13)
    a = torch.randn(sum(ks), m, device="cuda", dtype=torch.bfloat16, generator=gen)
    b = torch.randn(sum(ks), n, device="cuda", dtype=torch.bfloat16, generator=gen)
    d = torch.empty(len(ks), m, n, device="cuda", dtype=torch.float32)
    c = torch.randn(d.shape, device="cuda", generator=gen)
    call = calls.k_grouped_call(a, b, d, ks=ks, c=c)
    assert _resolved_config(call).multicast == "a"
    _check(call, lambda: dgreg.k_grouped_gemm_contiguous(a, b, d, ks=ks, c=c), 1e-5)
