"""The sm90 FP8 1d2d kernel's 256-row tiles up to 104 columns wide, which keep both 64-row
sub-tiles' wgmma groups in flight and promote one while the other runs, on a Hopper GPU against
the float64 reference: one and several K blocks, a partial last K block, M = 1 and odd M, N not
a multiple of the tile, tiles that straddle two B scale blocks, several tiles per CTA, a 2-CTA
cluster, and the M-grouped contiguous (two experts in a tile) and masked kernels."""

from __future__ import annotations

import pytest
import torch
from test_sm90_coverage_gpu import _check, _force, _operands, _resolved_config, contiguous_case

import dgreg
from dgreg import call as calls

pytestmark = [pytest.mark.gpu, pytest.mark.usefixtures("sm90_gpu")]


# (m, n, k, forced tile)
DENSE = [
    (256, 208, 128, "block_m=256,block_n=104,stages=3"),  # one K block
    (300, 1000, 1664, "block_m=256,block_n=104,stages=3"),  # 13 blocks; straddled scale blocks
    (1, 200, 1152, "block_m=256,block_n=96,stages=3"),  # M = 1
    (77, 520, 1040, "block_m=256,block_n=72,stages=4"),  # a partial last K block
    (4096, 3432, 7168, "block_m=256,block_n=104,stages=3"),  # 4 tiles per CTA
    (1024, 1000, 2048, "block_m=256,block_n=64,stages=4"),
    (512, 832, 1024, "block_m=256,block_n=104,stages=3,multicast=a"),
]


@pytest.mark.parametrize(("m", "n", "k", "tile"), DENSE)
def test_dense_pair(m, n, k, tile, monkeypatch):
    _force(monkeypatch, tile)
    gen = torch.Generator(device="cuda").manual_seed(m + n + k)
    a, a_sf, b, b_sf = _operands(m, n, k, "fp8", "1d2d", gen)
    d = torch.empty(m, n, device="cuda", dtype=torch.bfloat16)
    kwargs = dict(a_scale=a_sf, b_scale=b_sf, recipe="1d2d")
    call = calls.dense_call(a, b, d, **kwargs)
    cfg = _resolved_config(call)
    assert (cfg.block_m, cfg.m_sub) == (256, 2) and cfg.block_n <= 104
    _check(call, lambda: dgreg.gemm(a, b, d, **kwargs), 1e-3)


def test_m_grouped_contiguous_pair(monkeypatch):
    _force(monkeypatch, "block_m=256,block_n=104,stages=3")
    call, run = contiguous_case("fp8", n=400, seed=23, k=1152)
    assert _resolved_config(call).block_n == 104
    _check(call, run, 1e-3)


def test_m_grouped_masked_pair(monkeypatch):
    _force(monkeypatch, "block_m=256,block_n=80,stages=3")
    groups, m_max, n, k = 4, 320, 560, 1152
    gen = torch.Generator(device="cuda").manual_seed(24)
    a, a_sf, b, b_sf = _operands(m_max, n, k, "fp8", "1d2d", gen, (groups,), (groups,))
    d = torch.empty(groups, m_max, n, device="cuda", dtype=torch.bfloat16)
    for masked_m in ([320, 0, 65, 257], [1, 320, 200, 7]):
        masked = torch.tensor(masked_m, dtype=torch.int32, device="cuda")
        kwargs = dict(masked_m=masked, expected_m=160, a_scale=a_sf, b_scale=b_sf)
        call = calls.m_masked_call(a, b, d, **kwargs)
        assert _resolved_config(call).block_m == 256
        _check(call, lambda kwargs=kwargs: dgreg.m_grouped_gemm_masked(a, b, d, **kwargs), 1e-3)
