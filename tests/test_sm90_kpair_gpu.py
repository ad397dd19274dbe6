"""The sm90 FP8 kernel with two math warpgroups taking a 64-row tile's K blocks in turn
(kpair), on a Hopper GPU, against the float64 reference: an odd and an even number of K blocks
per unit (the second warpgroup may have none), split-K, M = 1 and odd M, K not a multiple of
128, B scales from three 128-wide blocks, and the 1d1d recipe with FP32 D and C."""

from __future__ import annotations

import pytest
import torch
from test_sm90_coverage_gpu import _check, _operands

import dgreg
from dgreg import call as calls
from dgreg import dispatch

pytestmark = [pytest.mark.gpu, pytest.mark.usefixtures("sm90_gpu")]

# (m, n, k, forced tile)
CASES = [
    (64, 2112, 7168, "block_m=64,block_n=64,split_k=4"),
    (1, 200, 1152, "block_m=64,block_n=48,split_k=2"),  # 9 K blocks: units of 5 and 4
    (77, 520, 128, "block_m=64,block_n=64"),  # one K block: the second warpgroup adds zeros
    (130, 4096, 7168, "block_m=64,block_n=128,stages=6"),
    (128, 7168, 2048, "block_m=64,block_n=176,split_k=3"),  # up to three B-scale blocks a tile
    (200, 1000, 1040, "block_m=64,block_n=104"),  # K = 1040: a partial last block
]


@pytest.mark.parametrize(("m", "n", "k", "tile"), CASES)
@pytest.mark.parametrize(("recipe", "out", "acc"),
                         [("1d2d", torch.bfloat16, False), ("1d1d", torch.float32, True)])
def test_dense_kpair(m, n, k, tile, recipe, out, acc, monkeypatch):
    if recipe == "1d1d" and "176" in tile:
        tile = tile.replace("176", "160")  # per-row B scales: block_n <= 160
    monkeypatch.setenv("DGREG_SM90_CONFIG", f"{tile},kpair=1")
    dispatch.clear_caches()
    gen = torch.Generator(device="cuda").manual_seed(m + n + k)
    a, a_sf, b, b_sf = _operands(m, n, k, "fp8", recipe, gen)
    d = torch.empty(m, n, device="cuda", dtype=out)
    c = torch.randn(m, n, device="cuda", generator=gen) if acc else None
    kwargs = dict(c=c, a_scale=a_sf, b_scale=b_sf, recipe=recipe)
    call = calls.dense_call(a, b, d, **kwargs)
    res = dgreg.resolve(call.spec, problem=call.problem)
    assert res.chosen.plugin == "sm90" and res.choice.config.kpair, str(res)
    for _ in range(2):  # split-K counters must be left at zero for the next call
        _check(call, lambda: dgreg.gemm(a, b, d, **kwargs), 1e-3)
