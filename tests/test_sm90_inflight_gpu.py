"""The sm90 FP8 1d2d kernel with two partial accumulators (``inflight``: a K block's wgmma run
while the previous block is promoted), on a Hopper GPU, against the float64 reference: one, two,
an odd and an even number of K blocks per unit, split-K, M = 1 and odd M, K not a multiple of
128, tiles that straddle two B scale blocks, 64- and 128-row tiles, a 2-CTA cluster, and the
M-grouped contiguous and masked kernels."""

from __future__ import annotations

import pytest
import torch
from test_sm90_coverage_gpu import _check, _force, _operands, _resolved_config, contiguous_case

import dgreg
from dgreg import call as calls

pytestmark = [pytest.mark.gpu, pytest.mark.usefixtures("sm90_gpu")]


# (m, n, k, forced tile)
DENSE = [
    (256, 640, 128, "block_m=128,block_n=128,stages=4"),  # one K block: no turn of the loop
    (256, 640, 256, "block_m=128,block_n=128,stages=4"),  # two
    (256, 640, 384, "block_m=128,block_n=128,stages=4,split_k=3"),  # one per unit
    (200, 1000, 1664, "block_m=128,block_n=120"),  # 13 K blocks; tiles straddle scale blocks
    (1, 200, 1152, "block_m=64,block_n=48,split_k=2"),  # 9 K blocks: units of 5 and 4
    (77, 520, 1040, "block_m=64,block_n=72"),  # a partial last K block
    (4096, 2112, 7168, "block_m=128,block_n=128,stages=4"),
    (130, 4096, 7168, "block_m=128,block_n=64,split_k=3"),
    (384, 640, 1024, "block_m=128,block_n=128,multicast=a"),
]


@pytest.mark.parametrize(("m", "n", "k", "tile"), DENSE)
def test_dense_inflight(m, n, k, tile, monkeypatch):
    _force(monkeypatch, f"{tile},inflight=1")
    gen = torch.Generator(device="cuda").manual_seed(m + n + k)
    a, a_sf, b, b_sf = _operands(m, n, k, "fp8", "1d2d", gen)
    d = torch.empty(m, n, device="cuda", dtype=torch.bfloat16)
    kwargs = dict(a_scale=a_sf, b_scale=b_sf, recipe="1d2d")
    call = calls.dense_call(a, b, d, **kwargs)
    assert _resolved_config(call).inflight
    for _ in range(2):  # split-K counters must be left at zero for the next call
        _check(call, lambda: dgreg.gemm(a, b, d, **kwargs), 1e-3)


@pytest.mark.parametrize("tile", ["block_m=128,block_n=128", "block_m=64,block_n=80"])
def test_m_grouped_contiguous_inflight(tile, monkeypatch):
    _force(monkeypatch, f"{tile},inflight=1")
    call, run = contiguous_case("fp8", n=400, seed=21, k=1152)
    assert _resolved_config(call).inflight
    _check(call, run, 1e-3)


def test_m_grouped_masked_inflight(monkeypatch):
    _force(monkeypatch, "block_m=128,block_n=112,inflight=1")
    groups, m_max, n, k = 4, 320, 560, 1152
    gen = torch.Generator(device="cuda").manual_seed(22)
    a, a_sf, b, b_sf = _operands(m_max, n, k, "fp8", "1d2d", gen, (groups,), (groups,))
    d = torch.empty(groups, m_max, n, device="cuda", dtype=torch.bfloat16)
    for masked_m in ([320, 0, 65, 129], [1, 320, 200, 7]):
        masked = torch.tensor(masked_m, dtype=torch.int32, device="cuda")
        kwargs = dict(masked_m=masked, expected_m=160, a_scale=a_sf, b_scale=b_sf)
        call = calls.m_masked_call(a, b, d, **kwargs)
        assert _resolved_config(call).inflight
        _check(call, lambda kwargs=kwargs: dgreg.m_grouped_gemm_masked(a, b, d, **kwargs), 1e-3)
