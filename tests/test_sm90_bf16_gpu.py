"""The sm90 plugin's BF16 kernel on a Hopper GPU, against a float64 reference."""

from __future__ import annotations

import pytest
import torch

import dgreg

pytestmark = [pytest.mark.gpu, pytest.mark.usefixtures("sm90_gpu")]

SHAPES = [(1, 2112, 7168), (7, 256, 512), (64, 2112, 7168), (129, 4096, 7168), (300, 576, 200),
          (4096, 7168, 2048), (2048, 7168, 16384), (17, 8, 72), (1000, 1000, 1024)]


def _check(m, n, k, seed):
    gen = torch.Generator(device="cuda").manual_seed(seed)
    a = torch.randn(m, k, device="cuda", dtype=torch.bfloat16, generator=gen)
    b = torch.randn(n, k, device="cuda", dtype=torch.bfloat16, generator=gen)
    d = torch.full((m, n), float("nan"), device="cuda", dtype=torch.bfloat16)
    dgreg.gemm(a, b, d)
    torch.cuda.synchronize()
    ref = a.double() @ b.double().T
    assert not d.isnan().any(), "unwritten output elements"
    assert dgreg.calc_diff(d, ref) < 1e-5
    assert (d.double() - ref).abs().max().item() <= 2 ** -7 * ref.abs().max().item() + 1e-2


@pytest.mark.parametrize(("m", "n", "k"), SHAPES)
def test_bf16_gemm_matches_float64(m, n, k):
    res = dgreg.explain("bf16_gemm", (m, n, k), file=None)
    assert res.chosen.kernel_id == "sm90.bf16_gemm", str(res)
    _check(m, n, k, m + n + k)


@pytest.mark.parametrize("forced", ["block_m=128,block_n=256", "block_m=256,block_n=192",
                                    "block_m=64,block_n=64,split_k=4", "block_m=64,block_n=200"])
def test_forced_bf16_configs(forced, monkeypatch):
    from dgreg import dispatch

    monkeypatch.setenv("DGREG_SM90_CONFIG", forced)
    dispatch.clear_caches()
    for _ in range(2):  # split-K counters must be reset for the second call
        _check(200, 1400, 1216, len(forced))
