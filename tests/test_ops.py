"""The torch.library registration: opcheck on the reference path, torch.compile on the CPU."""

from __future__ import annotations

import pytest
import torch

import dgreg
import dgreg.ops


def _fp8(rows, k):
    x = torch.randn(rows, k)
    return dgreg.per_token_cast_to_fp8(x)


def test_opcheck_every_op():
    a, a_sf = _fp8(32, 256)
    b, b_sf = dgreg.per_block_cast_to_fp8(torch.randn(48, 256))
    d = torch.empty(32, 48, dtype=torch.bfloat16)
    # test_schema compares inputs with arithmetic torch lacks for FP8 on the CPU; the FP8 op
    # gets every other check here, and test_schema with BF16 below and on the GPU.
    fp8_checks = ("test_autograd_registration", "test_faketensor", "test_aot_dispatch_dynamic")
    torch.library.opcheck(torch.ops.dgreg.gemm_.default,
                          (a, b, d, None, False, a_sf, b_sf, None, "NT"), test_utils=fp8_checks)
    c = torch.randn(32, 48)
    d32 = torch.zeros(32, 48)
    torch.library.opcheck(torch.ops.dgreg.gemm_.default,
                          (a, b, d32, c, False, a_sf, b_sf, "1d2d", "NT"), test_utils=fp8_checks)
    torch.library.opcheck(torch.ops.dgreg.gemm_.default,
                          (torch.randn(32, 64, dtype=torch.bfloat16),
                           torch.randn(48, 64, dtype=torch.bfloat16), d, None, False, None, None,
                           None, "NT"))
    ab = torch.randn(2, 16, 64, dtype=torch.bfloat16)
    bb = torch.randn(2, 24, 64, dtype=torch.bfloat16)
    torch.library.opcheck(torch.ops.dgreg.m_grouped_gemm_masked_.default,
                          (ab, bb, torch.zeros(2, 16, 24, dtype=torch.bfloat16),
                           torch.tensor([3, 16], dtype=torch.int32), None, None, None, 8))
    ids = torch.tensor([0] * 128 + [1] * 128, dtype=torch.int32)
    torch.library.opcheck(torch.ops.dgreg.m_grouped_gemm_contiguous_.default,
                          (torch.randn(256, 64, dtype=torch.bfloat16), bb,
                           torch.zeros(256, 24, dtype=torch.bfloat16), ids, None, None, None,
                           "NT", False, None))
    ka, kb = torch.randn(96, 16, dtype=torch.bfloat16), torch.randn(96, 24, dtype=torch.bfloat16)
    torch.library.opcheck(torch.ops.dgreg.k_grouped_gemm_contiguous_.default,
                          (ka, kb, torch.zeros(2, 16, 24), None, False, None, None, None,
                           [32, 64], None))


def test_torch_compile_calls_the_op():
    a = torch.randn(16, 64, dtype=torch.bfloat16)
    b = torch.randn(24, 64, dtype=torch.bfloat16)
    c = torch.randn(16, 24)

    @torch.compile(backend="aot_eager", fullgraph=True)
    def f(a, b, c):
        d = torch.zeros(16, 24)
        dgreg.gemm(a, b, d, c=c)
        return d + 1

    ref = a.double() @ b.double().T + c.double() + 1
    assert dgreg.calc_diff(f(a, b, c), ref) < 1e-6


def test_compiled_calls_need_an_explicit_output():
    @torch.compile(backend="aot_eager", fullgraph=True)
    def f(a, b):
        return dgreg.gemm(a, b)

    with pytest.raises(Exception, match=r"needs an explicit 'd' inside torch\.compile"):
        f(torch.randn(4, 16, dtype=torch.bfloat16), torch.randn(4, 16, dtype=torch.bfloat16))
