"""Argument validation of the public API: every bad argument is a named, typed error.

Each public function is called with a valid base call in which one argument is broken.
The call must raise :class:`dgreg.InvalidArgumentError` whose ``argument`` is the broken
argument and whose message quotes it. Hypothesis then throws malformed calls at the API:
a call either returns the right result (checked against the float64 oracle of
``tests/oracle.py``) or raises InvalidArgumentError / UnsupportedSpecError, never a
torch-internal exception.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from api_inputs import BF16, FP8, FP32, gen, i32, operand
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from oracle import dequant, k_blocks

import dgreg
from dgreg import layout as L
from dgreg.call import dense_call
from dgreg.errors import DgregError, InvalidArgumentError, NoKernelError, UnsupportedSpecError
from dgreg.spec import Layout

pytestmark = pytest.mark.filterwarnings("ignore::dgreg.errors.FallbackWarning")

FUNCS: dict[str, Callable[..., Any]] = {
    "gemm": dgreg.gemm,
    "m_contiguous": dgreg.m_grouped_gemm_contiguous,
    "m_masked": dgreg.m_grouped_gemm_masked,
    "k_grouped": dgreg.k_grouped_gemm_contiguous,
}

ARGUMENTS = {
    "gemm": {"a", "b", "d", "c", "a_scale", "b_scale", "layout", "out_dtype", "recipe"},
    "m_contiguous": {"a", "b", "d", "grouped_layout", "a_scale", "b_scale", "layout",
                     "use_psum_layout", "expected_m", "out_dtype", "recipe"},
    "m_masked": {"a", "b", "d", "masked_m", "expected_m", "a_scale", "b_scale", "out_dtype",
                 "recipe"},
    "k_grouped": {"a", "b", "d", "ks", "ks_tensor", "c", "a_scale", "b_scale", "recipe"},
}


# -- valid base calls ------------------------------------------------------------------------

def _sf(*shape: int) -> torch.Tensor:
    return torch.rand(*shape, generator=gen()) + 0.5


M, N, K = 32, 48, 256  # KB = 2, NB = 1
G = 2


def base(name: str) -> dict[str, Any]:
    """Fresh keyword arguments of a valid call; ``name`` is ``<func>-<fp8|bf16>``."""
    func, kind = name.rsplit("-", 1)
    dt = FP8 if kind == "fp8" else BF16
    fp8 = kind == "fp8"
    if func == "gemm":
        kw = {"a": operand((M, K), dt), "b": operand((N, K), dt)}
        if fp8:
            kw.update(a_scale=_sf(M, 2), b_scale=_sf(1, 2))
        return kw
    if func == "m_contiguous":
        ids = [0] * 128 + [1] * 100 + [-1] * 28
        kw = {"a": operand((256, K), dt), "b": operand((G, N, K), dt), "grouped_layout": i32(ids)}
        if fp8:
            kw.update(a_scale=_sf(256, 2), b_scale=_sf(G, 1, 2))
        return kw
    if func == "m_masked":
        kw = {"a": operand((G, M, K), dt), "b": operand((G, N, K), dt), "masked_m": i32([5, M]),
              "expected_m": 16}
        if fp8:
            kw.update(a_scale=_sf(G, M, 2), b_scale=_sf(G, 1, 2))
        return kw
    assert func == "k_grouped"
    ks = [128, 256] if fp8 else [16, 48]
    total = sum(ks)
    kw = {"a": operand((total, 16), dt), "b": operand((total, 32), dt), "ks": ks,
          "c": torch.randn(len(ks), 16, 32, generator=gen())}
    if fp8:
        kw.update(a_scale=_sf(total // 128, 16), b_scale=_sf(total // 128, 32))
    return kw


BASES = [f"{f}-{k}" for f in FUNCS for k in ("fp8", "bf16")]


@pytest.mark.parametrize("name", BASES)
def test_base_calls_are_valid(name: str) -> None:
    func = FUNCS[name.rsplit("-", 1)[0]]
    out = func(**base(name))
    assert isinstance(out, torch.Tensor)


# -- tensor mutations --------------------------------------------------------------------------

def misptr(t: torch.Tensor) -> torch.Tensor:
    """Same shape, dtype and values; data pointer one element past a 16-byte boundary."""
    buf = torch.empty(t.numel() + 1, dtype=t.dtype)
    v = buf[1:].view(t.shape)
    v.copy_(t)
    return v


def padded_rows(t: torch.Tensor, pad: int = 1) -> torch.Tensor:
    """Row-major, but the row stride is the row length plus ``pad`` elements."""
    buf = torch.empty(*t.shape[:-1], t.shape[-1] + pad, dtype=t.dtype)
    v = buf[..., : t.shape[-1]]
    v.copy_(t)
    return v


def step(t: torch.Tensor, s: int) -> torch.Tensor:
    """Same shape and values, stride ``s`` along the last dim (no unit stride when s > 1)."""
    buf = torch.empty(*t.shape[:-1], t.shape[-1] * s, dtype=t.dtype)
    v = buf[..., ::s]
    v.copy_(t)
    return v


def no_unit_stride(t: torch.Tensor) -> torch.Tensor:
    """Both strides multiples of 16 bytes, neither 1: passes the alignment rule, no major-ness."""
    return step(t, 16 // t.element_size())


def mn_major(t: torch.Tensor) -> torch.Tensor:
    """Same shape and values with the last two dims stored the other way round."""
    return t.transpose(-1, -2).contiguous().transpose(-1, -2)


def expanded(t: torch.Tensor) -> torch.Tensor:
    """Shape of ``t`` but every row is the same memory (stride 0)."""
    return torch.zeros(*t.shape[:-2], 1, t.shape[-1], dtype=t.dtype).expand(t.shape)


def overlapping_rows(t: torch.Tensor) -> torch.Tensor:
    """Row-major with unit column stride, but the row stride (8 elements) < the row length."""
    rows, cols = t.shape[-2], t.shape[-1]
    buf = torch.zeros(rows * 8 + cols, dtype=t.dtype)
    return buf.as_strided((rows, cols), (8, 1))


def on_meta(t: torch.Tensor) -> torch.Tensor:
    return torch.empty(t.shape, dtype=t.dtype, device="meta")


def _set(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(kw: dict[str, Any]) -> None:
        kw[key] = value(kw) if callable(value) else value

    return mutate


def _del(key: str) -> Callable[[dict[str, Any]], None]:
    def mutate(kw: dict[str, Any]) -> None:
        kw.pop(key, None)

    return mutate


def _d(shape: tuple[int, ...], dtype: torch.dtype = BF16) -> torch.Tensor:
    return torch.zeros(*shape, dtype=dtype)


def _bad_types(key: str) -> list[tuple[str, Callable[[dict[str, Any]], None]]]:
    """None is handled per argument (it is valid for some); list, numpy array, tuple, int."""
    return [
        (f"{key}-list", _set(key, lambda kw: kw[key].float().tolist() if isinstance(
            kw.get(key), torch.Tensor) else [1, 2])),
        (f"{key}-numpy", _set(key, lambda kw: kw[key].float().numpy() if isinstance(
            kw.get(key), torch.Tensor) else np.zeros((2, 2), dtype=np.float32))),
        (f"{key}-tuple", _set(key, lambda kw: (kw[key], kw[key]) if isinstance(
            kw.get(key), torch.Tensor) else (1, 2))),
        (f"{key}-int", _set(key, 7)),
    ]


# Each case: (id, base, mutation, expected argument name)
Case = tuple[str, str, Callable[[dict[str, Any]], None], str]
CASES: list[Case] = []


def case(base_name: str, argument: str, cid: str, mutate: Callable[[dict[str, Any]], None]
         ) -> None:
    CASES.append((f"{base_name}:{cid}", base_name, mutate, argument))


# ---- gemm --------------------------------------------------------------------------------------
for _key in ("a", "b", "a_scale", "b_scale"):
    case("gemm-fp8", _key, f"{_key}-None", _set(_key, None))
for _key in ("a", "b", "d", "c", "a_scale", "b_scale"):
    for _cid, _mut in _bad_types(_key):
        case("gemm-fp8", _key, _cid, _mut)
for _key in ("a", "b"):
    case("gemm-bf16", _key, f"{_key}-None", _set(_key, None))
    for _cid, _mut in _bad_types(_key):
        case("gemm-bf16", _key, _cid, _mut)

# dtypes
case("gemm-fp8", "a", "a-float16", _set("a", operand((M, K), torch.float16)))
case("gemm-fp8", "a", "a-int8", _set("a", torch.zeros(M, K, dtype=torch.int8)))
case("gemm-fp8", "a", "a-float32", _set("a", operand((M, K), FP32)))
case("gemm-fp8", "a", "a-e5m2", _set("a", torch.zeros(M, K, dtype=torch.float8_e5m2)))
case("gemm-fp8", "b", "b-bf16-vs-a-fp8", _set("b", operand((N, K), BF16)))
case("gemm-bf16", "b", "b-fp8-vs-a-bf16", _set("b", operand((N, K), FP8)))
case("gemm-bf16", "b", "b-float16", _set("b", operand((N, K), torch.float16)))
case("gemm-bf16", "a", "a-float16", _set("a", operand((M, K), torch.float16)))
case("gemm-bf16", "a", "both-float16", lambda kw: kw.update(
    a=operand((M, K), torch.float16), b=operand((N, K), torch.float16)))
case("gemm-fp8", "d", "d-float16", _set("d", _d((M, N), torch.float16)))
case("gemm-fp8", "d", "d-int32", _set("d", _d((M, N), torch.int32)))
case("gemm-fp8", "d", "d-fp8", _set("d", _d((M, N), FP8)))
case("gemm-fp8", "c", "c-float16", _set("c", _d((M, N), torch.float16)))
case("gemm-fp8", "c", "c-int32", _set("c", _d((M, N), torch.int32)))
case("gemm-fp8", "c", "c-bf16-with-fp32-d", lambda kw: kw.update(
    c=_d((M, N), BF16), d=_d((M, N), FP32)))
case("gemm-fp8", "out_dtype", "out_dtype-float16", _set("out_dtype", torch.float16))
case("gemm-fp8", "out_dtype", "out_dtype-int8", _set("out_dtype", torch.int8))
case("gemm-fp8", "out_dtype", "out_dtype-str", _set("out_dtype", "bf16"))
case("gemm-fp8", "out_dtype", "out_dtype-vs-d", lambda kw: kw.update(
    out_dtype=FP32, d=_d((M, N), BF16)))
# ndim
case("gemm-fp8", "a", "a-3d", _set("a", operand((1, M, K), FP8)))
case("gemm-fp8", "a", "a-1d", _set("a", operand((K,), FP8)))
case("gemm-fp8", "b", "b-3d", _set("b", operand((1, N, K), FP8)))
case("gemm-fp8", "b", "b-1d", _set("b", operand((K,), FP8)))
case("gemm-fp8", "a", "a-0d", _set("a", torch.tensor(1.0).to(FP8)))
case("gemm-fp8", "d", "d-3d", _set("d", _d((1, M, N))))
case("gemm-fp8", "c", "c-1d", _set("c", _d((N,), FP32)))
case("gemm-fp8", "a_scale", "a_scale-1d", _set("a_scale", _sf(M)))
case("gemm-fp8", "b_scale", "b_scale-3d", _set("b_scale", _sf(1, 1, 2)))
case("gemm-fp8", "b_scale", "b_scale-1d", _set("b_scale", _sf(2)))
# shapes
case("gemm-fp8", "b", "b-K-mismatch", _set("b", operand((N, K + 16), FP8)))
case("gemm-bf16", "b", "b-K-mismatch", _set("b", operand((N, K - 8), BF16)))
case("gemm-fp8", "d", "d-shape", _set("d", _d((M, N + 16))))
case("gemm-fp8", "d", "d-transposed-shape", _set("d", _d((N, M))))
case("gemm-fp8", "c", "c-shape", _set("c", _d((M + 1, N), FP32)))
case("gemm-fp8", "a_scale", "a_scale-kb+1", _set("a_scale", _sf(M, 3)))
case("gemm-fp8", "a_scale", "a_scale-m+1", _set("a_scale", _sf(M + 1, 2)))
case("gemm-fp8", "a_scale", "a_scale-per-block", _set("a_scale", _sf(1, 2)))
case("gemm-fp8", "b_scale", "b_scale-rows", _set("b_scale", _sf(2, 2)))
case("gemm-fp8", "b_scale", "b_scale-kb+1", _set("b_scale", _sf(1, 3)))
case("gemm-fp8", "b_scale", "b_scale-1d1d-kb", _set("b_scale", _sf(N, 3)))
case("gemm-fp8", "a_scale", "TT-a_scale-not-transposed", lambda kw: kw.update(
    a=kw["a"].t().contiguous(), layout="TT"))
case("gemm-fp8", "b_scale", "NN-b_scale-1d1d-not-transposed", lambda kw: kw.update(
    b=kw["b"].t().contiguous(), b_scale=_sf(N, 2), layout="NN"))
case("gemm-fp8", "b", "TT-a-not-transposed-K-mismatch", lambda kw: kw.update(
    layout="TT", a_scale=kw["a_scale"].t().contiguous()))
# strides and alignment
case("gemm-bf16", "a", "a-stride-2", _set("a", lambda kw: step(kw["a"], 2)))
case("gemm-fp8", "a", "a-stride-2", _set("a", lambda kw: step(kw["a"], 2)))
case("gemm-bf16", "a", "a-no-unit-stride", _set("a", lambda kw: no_unit_stride(kw["a"])))
case("gemm-fp8", "b", "b-no-unit-stride", _set("b", lambda kw: no_unit_stride(kw["b"])))
case("gemm-bf16", "b", "b-stride-2", _set("b", lambda kw: step(kw["b"], 2)))
case("gemm-fp8", "a", "fp8-K100-row-stride", lambda kw: kw.update(
    a=operand((M, 100), FP8), b=operand((N, 100), FP8), a_scale=_sf(M, 1), b_scale=_sf(1, 1)))
case("gemm-bf16", "a", "bf16-K36-row-stride", lambda kw: kw.update(
    a=operand((M, 36), BF16), b=operand((N, 36), BF16)))
case("gemm-fp8", "b", "fp8-b-padded-rows", _set("b", lambda kw: padded_rows(kw["b"], 8)))
case("gemm-bf16", "a", "bf16-TT-M-stride", lambda kw: kw.update(
    a=operand((K, 36), BF16), b=operand((N, K), BF16), layout="TT"))
case("gemm-fp8", "a", "a-misaligned-ptr", _set("a", lambda kw: misptr(kw["a"])))
case("gemm-fp8", "b", "b-misaligned-ptr", _set("b", lambda kw: misptr(kw["b"])))
case("gemm-bf16", "a", "a-misaligned-ptr", _set("a", lambda kw: misptr(kw["a"])))
case("gemm-bf16", "a", "a-sliced-offset-1",
     _set("a", lambda kw: operand((M, K + 8), BF16)[:, 1:K + 1]))
case("gemm-fp8", "d", "d-misaligned-ptr", _set("d", lambda kw: misptr(_d((M, N)))))
case("gemm-fp8", "c", "c-misaligned-ptr", _set("c", lambda kw: misptr(_d((M, N), FP32))))
case("gemm-fp8", "d", "d-row-stride-misaligned", _set("d", lambda kw: padded_rows(_d((M, N)))))
case("gemm-fp8", "c", "c-row-stride-misaligned", _set("c", lambda kw: padded_rows(_d((M, N), FP32))))
case("gemm-fp8", "d", "d-not-row-major", _set("d", lambda kw: _d((N, M)).t()))
case("gemm-fp8", "c", "c-not-row-major", _set("c", lambda kw: _d((N, M), FP32).t()))
case("gemm-bf16", "d", "d-not-row-major", _set("d", lambda kw: _d((N, M), FP32).t()))
case("gemm-fp8", "d", "d-expanded-stride-0", _set("d", lambda kw: expanded(_d((M, N)))))
case("gemm-bf16", "d", "d-overlapping-rows", _set("d", lambda kw: overlapping_rows(_d((M, N)))))
case("gemm-fp8", "c", "c-on-meta", _set("c", lambda kw: on_meta(_d((M, N), FP32))))
case("gemm-fp8", "d", "d-on-meta", _set("d", lambda kw: on_meta(_d((M, N)))))
case("gemm-fp8", "a_scale", "a_scale-on-meta", _set("a_scale", lambda kw: on_meta(kw["a_scale"])))
case("gemm-fp8", "b", "b-on-meta", _set("b", lambda kw: on_meta(kw["b"])))
# scales: BF16 with scales, FP8 without, int32/float32 confusion
case("gemm-bf16", "a_scale", "bf16-with-a_scale", _set("a_scale", _sf(M, 2)))
case("gemm-bf16", "b_scale", "bf16-with-b_scale", _set("b_scale", _sf(1, 2)))
case("gemm-fp8", "a_scale", "fp8-missing-both-scales", lambda kw: kw.update(
    a_scale=None, b_scale=None))
case("gemm-fp8", "a_scale", "a_scale-int32-float-shape", _set("a_scale", i32([1] * 64).view(M, 2)))
case("gemm-fp8", "b_scale", "a_scale-int32-b_scale-float", lambda kw: kw.update(
    a_scale=torch.full((M, 1), 0x7F7F7F7F, dtype=torch.int32)))
case("gemm-fp8", "b_scale", "b_scale-int32", _set("b_scale", torch.ones(1, 2, dtype=torch.int32)))
case("gemm-fp8", "a_scale", "a_scale-float64", _set("a_scale", lambda kw: kw["a_scale"].double()))
case("gemm-fp8", "a_scale", "a_scale-bf16", _set("a_scale", lambda kw: kw["a_scale"].bfloat16()))
case("gemm-fp8", "b_scale", "b_scale-float16", _set("b_scale", lambda kw: kw["b_scale"].half()))
case("gemm-fp8", "a_scale", "recipe-ue8m0-with-float-scales", _set("recipe", "ue8m0"))
case("gemm-fp8", "a_scale", "recipe-1d2d-with-int-scales", lambda kw: kw.update(
    recipe="1d2d", a_scale=torch.full((M, 2), 0x7F, dtype=torch.int32),
    b_scale=torch.full((1, 2), 0x7F, dtype=torch.int32)))
case("gemm-fp8", "b_scale", "recipe-1d1d-with-block-scales", _set("recipe", "1d1d"))
# recipe and layout values
for _r in ("bogus", (1, 2, 3), 5, [1, 128, 128]):
    case("gemm-fp8", "recipe", f"recipe-{_r!r}", _set("recipe", _r))
for _r in ("1d2d", "ue8m0", (1, 128, 128), "bogus", (9, 9, 9)):
    case("gemm-bf16", "recipe", f"bf16-recipe-{_r!r}", _set("recipe", _r))
for _lay in ("XX", "", None, 5, "NTT", "N", ("N", "T")):
    case("gemm-fp8", "layout", f"layout-{_lay!r}", _set("layout", _lay))
    case("gemm-bf16", "layout", f"layout-{_lay!r}", _set("layout", _lay))

# ---- m_grouped_gemm_contiguous ----------------------------------------------------------------
for _k in ("fp8", "bf16"):
    _b = f"m_contiguous-{_k}"
    _dt = FP8 if _k == "fp8" else BF16
    for _key in ("a", "b", "grouped_layout"):
        case(_b, _key, f"{_key}-None", _set(_key, None))
    for _key in ("a", "b", "d", "grouped_layout"):
        for _cid, _mut in _bad_types(_key):
            case(_b, _key, _cid, _mut)
    case(_b, "a", "a-3d", _set("a", operand((1, 256, K), _dt)))
    case(_b, "b", "b-2d", _set("b", operand((N, K), _dt)))
    case(_b, "b", "b-4d", _set("b", operand((1, G, N, K), _dt)))
    case(_b, "a", "a-float16", _set("a", operand((256, K), torch.float16)))
    case(_b, "b", "b-other-dtype", _set("b", operand((G, N, K), BF16 if _k == "fp8" else FP8)))
    case(_b, "b", "b-K-mismatch", _set("b", operand((G, N, K - 16), _dt)))
    case(_b, "b", "b-no-groups", _set("b", operand((0, N, K), _dt)))
    case(_b, "grouped_layout", "gl-int64", _set("grouped_layout",
                                                lambda kw: kw["grouped_layout"].long()))
    case(_b, "grouped_layout", "gl-float32", _set("grouped_layout",
                                                  lambda kw: kw["grouped_layout"].float()))
    case(_b, "grouped_layout", "gl-too-long", _set("grouped_layout", i32([0] * 257)))
    case(_b, "grouped_layout", "gl-2d", _set("grouped_layout",
                                             lambda kw: kw["grouped_layout"].view(256, 1)))
    case(_b, "grouped_layout", "gl-on-meta", _set("grouped_layout",
                                                  lambda kw: on_meta(kw["grouped_layout"])))
    case(_b, "grouped_layout", "psum-with-per-row-ids", _set("use_psum_layout", True))
    case(_b, "grouped_layout", "psum-G+1-ends", lambda kw: kw.update(
        use_psum_layout=True, grouped_layout=i32([128, 228, 256])))
    for _v in (1, 0, "yes", None, np.bool_(True)):
        case(_b, "use_psum_layout", f"use_psum_layout-{_v!r}", _set("use_psum_layout", _v))
    for _v in (0, -1, True, False, 2.5, "4"):
        case(_b, "expected_m", f"expected_m-{_v!r}", _set("expected_m", _v))
    for _lay in ("TN", "TT", "XX", None):
        case(_b, "layout", f"layout-{_lay!r}", _set("layout", _lay))
    case(_b, "a", "a-mn-major", _set("a", lambda kw: mn_major(kw["a"])))
    case(_b, "a", "a-misaligned-ptr", _set("a", lambda kw: misptr(kw["a"])))
    case(_b, "b", "b-no-unit-stride", _set("b", lambda kw: no_unit_stride(kw["b"])))
    case(_b, "b", "b-group-stride-misaligned", _set("b", lambda kw, dt=_dt: torch.empty(
        G * N * K + 8, dtype=dt).as_strided((G, N, K), (N * K + 1, K, 1))))
    case(_b, "d", "d-shape", _set("d", _d((256, N + 16))))
    case(_b, "d", "d-float16", _set("d", _d((256, N), torch.float16)))
    case(_b, "d", "d-misaligned-ptr", _set("d", lambda kw: misptr(_d((256, N)))))
    case(_b, "d", "d-not-row-major", _set("d", lambda kw: _d((N, 256)).t()))
    case(_b, "d", "d-expanded-stride-0", _set("d", lambda kw: expanded(_d((256, N)))))
    case(_b, "out_dtype", "out_dtype-float16", _set("out_dtype", torch.float16))
    case(_b, "recipe", "recipe-bogus", _set("recipe", "bogus"))
case("m_contiguous-fp8", "a_scale", "a_scale-None", _set("a_scale", None))
case("m_contiguous-fp8", "b_scale", "b_scale-None", _set("b_scale", None))
case("m_contiguous-fp8", "b_scale", "b_scale-list", _set("b_scale", [[1.0, 1.0]]))
case("m_contiguous-fp8", "a_scale", "a_scale-kb+1", _set("a_scale", _sf(256, 3)))
case("m_contiguous-fp8", "b_scale", "b_scale-G+1", _set("b_scale", _sf(G + 1, 1, 2)))
case("m_contiguous-fp8", "b_scale", "b_scale-2d", _set("b_scale", _sf(1, 2)))
case("m_contiguous-fp8", "b_scale", "NN-b_scale-not-transposed-1d1d", lambda kw: kw.update(
    b=kw["b"].transpose(1, 2).contiguous(), b_scale=_sf(G, N, 2), layout="NN"))
case("m_contiguous-fp8", "a_scale", "a_scale-int64", _set("a_scale",
                                                           lambda kw: kw["a_scale"].long()))
case("m_contiguous-bf16", "a_scale", "bf16-with-a_scale", _set("a_scale", _sf(256, 1)))
case("m_contiguous-bf16", "b_scale", "bf16-with-b_scale", _set("b_scale", _sf(G, 1, 1)))

# ---- m_grouped_gemm_masked ----------------------------------------------------------------
for _k in ("fp8", "bf16"):
    _b = f"m_masked-{_k}"
    _dt = FP8 if _k == "fp8" else BF16
    for _key in ("a", "b", "masked_m"):
        case(_b, _key, f"{_key}-None", _set(_key, None))
    for _key in ("a", "b", "d", "masked_m"):
        for _cid, _mut in _bad_types(_key):
            case(_b, _key, _cid, _mut)
    case(_b, "a", "a-2d", _set("a", operand((M, K), _dt)))
    case(_b, "b", "b-2d", _set("b", operand((N, K), _dt)))
    case(_b, "a", "a-int8", _set("a", torch.zeros(G, M, K, dtype=torch.int8)))
    case(_b, "b", "b-other-dtype", _set("b", operand((G, N, K), BF16 if _k == "fp8" else FP8)))
    case(_b, "b", "b-groups-mismatch", _set("b", operand((G + 1, N, K), _dt)))
    case(_b, "b", "b-K-mismatch", _set("b", operand((G, N, K + 16), _dt)))
    case(_b, "masked_m", "masked_m-int64", _set("masked_m", lambda kw: kw["masked_m"].long()))
    case(_b, "masked_m", "masked_m-float", _set("masked_m", lambda kw: kw["masked_m"].float()))
    case(_b, "masked_m", "masked_m-G+1", _set("masked_m", i32([1, 2, 3])))
    case(_b, "masked_m", "masked_m-2d", _set("masked_m", lambda kw: kw["masked_m"].view(G, 1)))
    case(_b, "masked_m", "masked_m-scalar", _set("masked_m", torch.tensor(3, dtype=torch.int32)))
    case(_b, "masked_m", "masked_m-on-meta", _set("masked_m", lambda kw: on_meta(kw["masked_m"])))
    for _v in (0, -1, True, 2.5, "4"):
        case(_b, "expected_m", f"expected_m-{_v!r}", _set("expected_m", _v))
    case(_b, "a", "a-mn-major", _set("a", lambda kw: mn_major(kw["a"])))
    case(_b, "b", "b-mn-major", _set("b", lambda kw: mn_major(kw["b"])))
    case(_b, "a", "a-misaligned-ptr", _set("a", lambda kw: misptr(kw["a"])))
    case(_b, "d", "d-shape", _set("d", _d((G, M, N + 16))))
    case(_b, "d", "d-2d", _set("d", _d((M, N))))
    case(_b, "d", "d-float16", _set("d", _d((G, M, N), torch.float16)))
    case(_b, "d", "d-not-row-major", _set("d", lambda kw: _d((G, N, M)).transpose(1, 2)))
    case(_b, "d", "d-misaligned-ptr", _set("d", lambda kw: misptr(_d((G, M, N)))))
    case(_b, "out_dtype", "out_dtype-float16", _set("out_dtype", torch.float16))
case("m_masked-fp8", "a_scale", "a_scale-None", _set("a_scale", None))
case("m_masked-fp8", "b_scale", "b_scale-None", _set("b_scale", None))
case("m_masked-fp8", "a_scale", "a_scale-2d", _set("a_scale", _sf(M, 2)))
case("m_masked-fp8", "a_scale", "a_scale-kb+1", _set("a_scale", _sf(G, M, 3)))
case("m_masked-fp8", "b_scale", "b_scale-G+1", _set("b_scale", _sf(G + 1, 1, 2)))
case("m_masked-fp8", "b_scale", "b_scale-int32", _set("b_scale", torch.ones(G, 1, 2, dtype=torch.int32)))
case("m_masked-fp8", "recipe", "recipe-bogus", _set("recipe", "bogus"))
case("m_masked-bf16", "a_scale", "bf16-with-a_scale", _set("a_scale", _sf(G, M, 1)))

# ---- k_grouped_gemm_contiguous ----------------------------------------------------------------
for _k in ("fp8", "bf16"):
    _b = f"k_grouped-{_k}"
    _dt = FP8 if _k == "fp8" else BF16
    _tot = 384 if _k == "fp8" else 64
    for _key in ("a", "b", "ks"):
        case(_b, _key, f"{_key}-None", _set(_key, None))
    for _key in ("a", "b", "d", "c", "ks_tensor"):
        for _cid, _mut in _bad_types(_key):
            case(_b, _key, _cid, _mut)
    case(_b, "ks", "ks-numpy", _set("ks", lambda kw: np.array(kw["ks"])))
    case(_b, "ks", "ks-tensor", _set("ks", lambda kw: torch.tensor(kw["ks"])))
    case(_b, "ks", "ks-int", _set("ks", 5))
    case(_b, "ks", "ks-empty", _set("ks", []))
    case(_b, "ks", "ks-str", _set("ks", "128,256"))
    case(_b, "ks", "ks-sum-too-small", _set("ks", lambda kw: kw["ks"][:1]))
    case(_b, "ks", "ks-sum-too-large", _set("ks", lambda kw: [*kw["ks"], kw["ks"][0]]))
    case(_b, "ks", "ks-negative", _set("ks", lambda kw: [-kw["ks"][0], kw["ks"][1] + 2 * kw["ks"][0]]))
    case(_b, "ks", "ks-bool", _set("ks", lambda kw: [True, sum(kw["ks"]) - 1]))
    case(_b, "ks", "ks-float", _set("ks", lambda kw: [float(v) for v in kw["ks"]]))
    case(_b, "ks_tensor", "ks_tensor-int64", _set("ks_tensor", lambda kw: torch.tensor(kw["ks"])))
    case(_b, "ks_tensor", "ks_tensor-len", _set("ks_tensor", lambda kw: i32([*kw["ks"], 0])))
    case(_b, "ks_tensor", "ks_tensor-on-meta", _set("ks_tensor", lambda kw: on_meta(i32(kw["ks"]))))
    case(_b, "a", "a-3d", _set("a", operand((1, _tot, 16), _dt)))
    case(_b, "b", "b-1d", _set("b", operand((_tot,), _dt)))
    case(_b, "a", "a-float32", _set("a", operand((_tot, 16), FP32)))
    case(_b, "b", "b-other-dtype", _set("b", operand((_tot, 32), BF16 if _k == "fp8" else FP8)))
    case(_b, "b", "b-rows-mismatch", _set("b", operand((_tot + 16, 32), _dt)))
    case(_b, "a", "a-k-major", _set("a", lambda kw: mn_major(kw["a"])))
    case(_b, "b", "b-k-major", _set("b", lambda kw: mn_major(kw["b"])))
    case(_b, "a", "a-misaligned-ptr", _set("a", lambda kw: misptr(kw["a"])))
    case(_b, "d", "d-shape", _set("d", _d((2, 16, 33), FP32)))
    case(_b, "d", "d-bf16", _set("d", _d((2, 16, 32), BF16)))
    case(_b, "d", "d-2d", _set("d", _d((16, 32), FP32)))
    case(_b, "d", "d-not-row-major", _set("d", lambda kw: _d((2, 32, 16), FP32).transpose(1, 2)))
    case(_b, "c", "c-bf16", _set("c", _d((2, 16, 32), BF16)))
    case(_b, "c", "c-shape", _set("c", _d((3, 16, 32), FP32)))
    case(_b, "c", "c-misaligned-ptr", _set("c", lambda kw: misptr(_d((2, 16, 32), FP32))))
    case(_b, "recipe", "recipe-bogus", _set("recipe", "bogus"))
case("k_grouped-fp8", "ks", "ks-not-multiple-of-128", _set("ks", [64, 320]))
case("k_grouped-fp8", "ks", "ks-ue8m0-not-multiple-of-512", lambda kw: kw.update(
    a_scale=torch.full((1, 16), 0x7F7F7F7F, dtype=torch.int32),
    b_scale=torch.full((1, 32), 0x7F7F7F7F, dtype=torch.int32), recipe="ue8m0"))
case("k_grouped-fp8", "a_scale", "a_scale-None", _set("a_scale", None))
case("k_grouped-fp8", "b_scale", "b_scale-None", _set("b_scale", None))
case("k_grouped-fp8", "a_scale", "a_scale-not-transposed", _set("a_scale", _sf(16, 3)))
case("k_grouped-fp8", "b_scale", "b_scale-rows", _set("b_scale", _sf(2, 32)))
case("k_grouped-fp8", "a_scale", "recipe-1d1d-with-int32-scales", lambda kw: kw.update(
    recipe="1d1d", a_scale=torch.ones(3, 16, dtype=torch.int32)))
case("k_grouped-fp8", "recipe", "recipe-1d2d", _set("recipe", "1d2d"))
case("k_grouped-fp8", "recipe", "recipe-1-128-128", _set("recipe", (1, 128, 128)))
case("k_grouped-bf16", "a_scale", "bf16-with-a_scale", _set("a_scale", _sf(1, 16)))
case("k_grouped-bf16", "recipe", "bf16-recipe-1d1d", _set("recipe", "1d1d"))


@pytest.mark.parametrize(("base_name", "mutate", "argument"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_argument(base_name: str, mutate: Callable[[dict[str, Any]], None],
                      argument: str) -> None:
    kw = base(base_name)
    mutate(kw)
    func = FUNCS[base_name.rsplit("-", 1)[0]]
    try:
        func(**kw)
    except InvalidArgumentError as exc:
        assert exc.argument == argument or exc.argument.startswith(f"{argument}["), (
            f"named {exc.argument!r}, expected {argument!r}: {exc}")
        assert f"'{exc.argument}'" in str(exc)
        assert exc.expected and str(exc.received)
    except Exception as exc:
        pytest.fail(f"expected InvalidArgumentError naming {argument!r}, got "
                    f"{type(exc).__name__}: {exc}")
    else:
        pytest.fail(f"expected InvalidArgumentError naming {argument!r}; the call succeeded")


def test_case_table_covers_every_argument() -> None:
    """Every argument of every public function is broken by at least one case."""
    named = {(b.rsplit("-", 1)[0], arg) for _, b, _, arg in CASES}
    for func, args in ARGUMENTS.items():
        missing = {a for a in args if (func, a) not in named}
        assert not missing, f"{func}: no bad-input case for {sorted(missing)}"


# -- plugin= ---------------------------------------------------------------------------------

@pytest.mark.parametrize("plugin", ["nope", "", [], ["reference"], ("reference",), 5,
                                    np.array(["reference"]), np.array(["a", "b"])],
                         ids=["unknown", "empty-str", "empty-list", "list", "tuple", "int",
                              "numpy-1", "numpy-2"])
@pytest.mark.parametrize("func", sorted(FUNCS))
def test_bad_plugin_argument(func: str, plugin: Any) -> None:
    """A pin that names no plugin is an error (NoKernelError or InvalidArgumentError('plugin')),
    never silently ignored and never a TypeError/ValueError from the lookup."""
    kw = base(f"{func}-bf16")
    try:
        FUNCS[func](**kw, plugin=plugin)
    except InvalidArgumentError as exc:
        assert exc.argument == "plugin"
    except NoKernelError as exc:
        assert "known plugins" in str(exc)
    except Exception as exc:
        pytest.fail(f"plugin={plugin!r}: {type(exc).__name__}: {exc}")
    else:
        pytest.fail(f"plugin={plugin!r} was silently accepted")


# -- value checks on the reference path ------------------------------------------------------

VALUE_CASES: list[tuple[str, str, Callable[[dict[str, Any]], None], str]] = [
    ("group-id-too-large", "m_contiguous-bf16",
     _set("grouped_layout", i32([0] * 128 + [2] * 100 + [-1] * 28)), "grouped_layout"),
    ("group-id-minus-2", "m_contiguous-fp8",
     _set("grouped_layout", i32([0] * 128 + [1] * 100 + [-2] * 28)), "grouped_layout"),
    ("block-mixing-two-groups", "m_contiguous-fp8",
     _set("grouped_layout", i32([0] * 100 + [1] * 28 + [1] * 128)), "grouped_layout"),
    ("block-mixing-two-groups-second-block", "m_contiguous-bf16",
     _set("grouped_layout", i32([0] * 128 + [1] * 127 + [0])), "grouped_layout"),
    ("group-starting-mid-block", "m_contiguous-bf16",
     _set("grouped_layout", i32([0] * 128 + [-1] * 10 + [1] * 118)), "grouped_layout"),
    ("psum-decreasing", "m_contiguous-fp8",
     lambda kw: kw.update(use_psum_layout=True, grouped_layout=i32([200, 100])),
     "grouped_layout"),
    ("psum-beyond-m", "m_contiguous-bf16",
     lambda kw: kw.update(use_psum_layout=True, grouped_layout=i32([128, 300])),
     "grouped_layout"),
    ("psum-negative", "m_contiguous-bf16",
     lambda kw: kw.update(use_psum_layout=True, grouped_layout=i32([-5, 100])),
     "grouped_layout"),
    ("psum-second-group-before-aligned-start", "m_contiguous-bf16",
     lambda kw: kw.update(use_psum_layout=True, grouped_layout=i32([100, 110])),
     "grouped_layout"),
    ("masked_m-above-M_max", "m_masked-fp8", _set("masked_m", i32([5, M + 1])), "masked_m"),
    ("masked_m-negative", "m_masked-bf16", _set("masked_m", i32([-1, 3])), "masked_m"),
    ("ks_tensor-disagrees-with-ks", "k_grouped-bf16",
     _set("ks_tensor", i32([48, 16])), "ks_tensor"),
]


@pytest.mark.parametrize(("base_name", "mutate", "argument"), [c[1:] for c in VALUE_CASES],
                         ids=[c[0] for c in VALUE_CASES])
def test_bad_values_on_reference_path(base_name: str, mutate: Callable[[dict[str, Any]], None],
                                      argument: str) -> None:
    kw = base(base_name)
    mutate(kw)
    func = FUNCS[base_name.rsplit("-", 1)[0]]
    with pytest.raises(InvalidArgumentError) as info:
        func(**kw, plugin="reference")
    assert info.value.argument == argument
    assert f"'{argument}'" in str(info.value)


def test_value_errors_leave_d_untouched() -> None:
    """A rejected grouped_layout must not leave a half-written d behind."""
    kw = base("m_contiguous-bf16")
    d = torch.full((256, N), float("nan"), dtype=BF16)
    kw.update(d=d, grouped_layout=i32([0] * 100 + [1] * 28 + [1] * 128))
    with pytest.raises(InvalidArgumentError):
        dgreg.m_grouped_gemm_contiguous(**kw)
    assert torch.isnan(d.float()).all()


@pytest.mark.parametrize("kind", ["fp8", "bf16"])
def test_masked_zero_groups(kind: str) -> None:
    """G = 0 (an empty batch of experts) is a no-op or a named error, not a bare ValueError."""
    dt = FP8 if kind == "fp8" else BF16
    kw: dict[str, Any] = {"a": operand((0, M, K), dt), "b": operand((0, N, K), dt),
                          "masked_m": torch.zeros(0, dtype=torch.int32)}
    if kind == "fp8":
        kw.update(a_scale=_sf(0, M, 2), b_scale=_sf(0, 1, 2))
    try:
        out = dgreg.m_grouped_gemm_masked(**kw)
    except InvalidArgumentError as exc:
        assert exc.argument in ("a", "b", "masked_m")
    except Exception as exc:
        pytest.fail(f"{type(exc).__name__}: {exc}")
    else:
        assert out.shape == (0, M, N)


# -- storage layout: spec.layout says which operands are K-major ------------------------------

def _passed(rows: int, k: int, dtype: torch.dtype, k_major: bool) -> torch.Tensor:
    """Logical ``[rows, k]`` as a caller passes it: ``[rows, k]`` or transposed ``[k, rows]``,
    rows padded to 16 bytes (the stride rule), as DeepGEMM's callers allocate."""
    outer, inner = (rows, k) if k_major else (k, rows)
    step = 16 // torch.empty((), dtype=dtype).element_size()
    return torch.zeros(outer, -(-inner // step) * step, dtype=dtype)[:, :inner]


@pytest.mark.parametrize("dtype", [BF16, FP8], ids=["bf16", "fp8"])
@pytest.mark.parametrize("layout", ["NT", "NN", "TN", "TT"])
def test_dense_call_labels_k1_operands_as_passed(layout: str, dtype: torch.dtype) -> None:
    """With K = 1 the K stride says nothing: an A passed as [1, M] (TN, TT) is MN-major, and
    a K-major kernel given it would read M as its row stride."""
    lay = Layout(layout)
    m, n = 64, 48
    a = _passed(m, 1, dtype, lay.a_k_major)
    b = _passed(n, 1, dtype, lay.b_k_major)
    scales: dict[str, Any] = {}
    if dtype == FP8:
        a_sf, b_sf = torch.ones(m, 1), torch.ones(n, 1)  # 1d1d: one scale per row and 128 K
        scales = {"a_scale": a_sf if lay.a_k_major else a_sf.t(),
                  "b_scale": b_sf if lay.b_k_major else b_sf.t(), "recipe": "1d1d"}
    call = dense_call(a, b, layout=layout, **scales)
    assert call.spec.layout == lay
    assert (call.problem.m, call.problem.n, call.problem.k) == (m, n, 1)
    assert (call.a.stride(-2) == 1) == (not lay.a_k_major)
    assert (call.b.stride(-2) == 1) == (not lay.b_k_major)


def _strides_fit_label(x: torch.Tensor, k_major: bool) -> bool:
    """What a TMA kernel assumes of a logical [rows, K] operand it was told the major-ness
    of: unit stride along that axis, and a 16-byte multiple for the other (where it is longer
    than 1)."""
    rows, k = x.shape
    unit, other, other_extent = (-1, -2, rows) if k_major else (-2, -1, k)
    unit_extent = k if k_major else rows
    unit_ok = unit_extent <= 1 or x.stride(unit) == 1
    other_ok = other_extent <= 1 or (x.stride(other) * x.element_size()) % 16 == 0
    return unit_ok and other_ok


@settings(max_examples=150, deadline=None, database=None)
@given(st.integers(1, 40), st.integers(1, 40), st.integers(1, 40),
       st.sampled_from(["NT", "NN", "TN", "TT"]), st.sampled_from(["padded", "contiguous"]))
def test_fuzz_dense_major_labels_fit_the_strides(m: int, n: int, k: int, layout: str,
                                                 storage: str) -> None:
    """Whatever dense_call accepts, each operand's label in spec.layout matches its strides."""
    lay = layout.upper()
    a = _passed(m, k, BF16, lay[0] == "N")
    b = _passed(n, k, BF16, lay[1] == "T")
    if storage == "contiguous":
        a, b = a.contiguous(), b.contiguous()
    try:
        call = dense_call(a, b, layout=layout)
    except InvalidArgumentError as exc:
        assert storage == "contiguous" and exc.argument in ("a", "b"), exc
        return
    labels = call.spec.layout
    assert _strides_fit_label(call.a, labels.a_k_major), (labels, call.a.stride())
    assert _strides_fit_label(call.b, labels.b_k_major), (labels, call.b.stride())
    if storage == "padded" and min(m, n) > 1:  # unambiguous operands keep the caller's layout
        assert call.spec.layout.value == lay


def test_m_grouped_refuses_an_unpadded_k1_a_with_a_hint() -> None:
    """A contiguous [M, 1] has rows one element apart: MN-major, so not an M-grouped A."""
    kw = {"a": torch.zeros(256, 1, dtype=BF16), "b": torch.zeros(G, N, 8, dtype=BF16)[..., :1],
          "grouped_layout": i32([0] * 128 + [1] * 128)}
    with pytest.raises(InvalidArgumentError, match="with K = 1, rows padded") as exc:
        dgreg.m_grouped_gemm_contiguous(**kw)
    assert exc.value.argument == "a"
    kw["a"] = _passed(256, 1, BF16, True)
    assert dgreg.m_grouped_gemm_contiguous(**kw).shape == (256, N)


def test_m_grouped_take_contiguous_k0_operands() -> None:
    """An empty operand has no major-ness: its strides (torch gives [M, 0] strides (1, 1)) must
    not make it MN-major."""
    ids = i32([0] * 128 + [1] * 128)
    a, b = torch.zeros(256, 0, dtype=BF16), torch.zeros(G, N, 0, dtype=BF16)
    out = dgreg.m_grouped_gemm_contiguous(a, b, grouped_layout=ids)
    assert out.shape == (256, N) and not out.any()
    a, b = torch.zeros(G, M, 0, dtype=BF16), torch.zeros(G, N, 0, dtype=BF16)
    out = dgreg.m_grouped_gemm_masked(a, b, masked_m=i32([3, M]), expected_m=16)
    assert out.shape == (G, M, N) and not out.any()


# -- hypothesis: malformed calls ---------------------------------------------------------------

def _oracle(a, b, sa, sb, recipe, c=None):
    ad = dequant(a, sa, recipe)
    bd = dequant(b, sb, recipe, block_rows=recipe == "1d2d")
    out = ad @ bd.transpose(-1, -2)
    mag = ad.abs() @ bd.abs().transpose(-1, -2)
    if c is not None:
        out = out + c.double()
        mag = mag + c.double().abs()
    return out, mag


def _close(d: torch.Tensor, expected: torch.Tensor, mag: torch.Tensor) -> bool:
    got = d.double()
    rel = 2.0 ** -8 if d.dtype == BF16 else 2.0 ** -20
    return bool(((got - expected).abs() <= rel * expected.abs() + 1e-5 * mag + 1e-30).all())


def _rule_ok(t: torch.Tensor) -> bool:
    """The documented stride rule, written independently of dgreg.call."""
    if t.numel() == 0:
        return True
    if t.data_ptr() % 16:
        return False
    for size, stride in zip(t.shape, t.stride(), strict=True):
        if size > 1 and stride != 1 and (stride * t.element_size()) % 16:
            return False
    return True


def _unexpected(exc: BaseException, func: str) -> str | None:
    """None if ``exc`` is an acceptable rejection of a call to ``func``."""
    if isinstance(exc, UnsupportedSpecError):
        return None
    if isinstance(exc, InvalidArgumentError):
        if exc.argument.split("[")[0] not in ARGUMENTS[func]:
            return f"InvalidArgumentError names {exc.argument!r}, not an argument of {func}"
        return None
    return f"{type(exc).__name__}: {exc}"


_TORCH_DT = {"fp8": FP8, "bf16": BF16, "fp16": torch.float16, "fp32": FP32, "int8": torch.int8}


def _make(shape: tuple[int, ...], dt: torch.dtype, seed: int) -> torch.Tensor:
    if dt == torch.int8:
        return (torch.randn(*shape, generator=gen(seed)) * 8).to(torch.int8)
    return operand(shape, dt, seed)


def _storage(t: torch.Tensor, how: str) -> torch.Tensor:
    if how == "flip" and t.dim() >= 2:
        return mn_major(t)
    if how == "offset":
        return misptr(t)
    if how == "step2" and t.dim() >= 1 and t.shape[-1] > 1:
        return step(t, 2)
    if how == "pad1" and t.dim() >= 2:
        return padded_rows(t, 1)
    return t.contiguous()


_GOOD = {
    "kind": ["fp8", "fp8", "bf16"],
    "layout": ["NT", "NN", "TN", "TT", "nt", "tn"],
    "a_how": ["plain", "plain", "flip"],
    "b_how": ["plain", "plain", "flip"],
    "sa_how": ["ok"],
    "sb_how": ["ok"],
    "d_how": ["none", "ok"],
    "c_how": ["none", "none", "f32", "bf16", "is_d"],
    "out_dtype": [None, None, "match"],
    "rec_how": [None, None, "true"],
}
_BAD = {
    "kind": ["fp16", "fp32", "int8", "mixed"],
    "layout": ["XX", None, "", 3],
    "a_how": ["offset", "step2", "pad1", "list", "none", "3d"],
    "b_how": ["offset", "step2", "pad1", "tuple", "none"],
    "sa_how": ["none", "rows+1", "kb+1", "f64", "int", "untransposed", "numpy"],
    "sb_how": ["none", "rows+1", "kb+1", "f64", "int", "untransposed"],
    "d_how": ["f16", "shape", "transposed", "expanded", "offset", "pad1"],
    "c_how": ["shape", "f16", "transposed"],
    "out_dtype": [torch.float16, "other"],
    "rec_how": ["bogus", "other"],
}


@st.composite
def dense_calls(draw: st.DrawFn) -> dict[str, Any]:
    """One call with at most one broken field (``target``); the rest drawn from good values."""
    target = draw(st.sampled_from([None, None, *_BAD]))
    p: dict[str, Any] = {"target": target}
    for field, good in _GOOD.items():
        p[field] = draw(st.sampled_from(_BAD[field] if field == target else good))
    p["m"] = draw(st.sampled_from([0, 1, 16, 32]))
    p["n"] = draw(st.sampled_from([0, 1, 16, 48, 144]))
    p["k"] = draw(st.sampled_from([0, 16, 100, 128, 272]))
    p["recipe"] = draw(st.sampled_from(["1d2d", "1d1d", "ue8m0"]))
    p["d_dtype"] = draw(st.sampled_from([BF16, FP32]))
    p["seed"] = draw(st.integers(0, 2**16))
    return p


def _build_dense(p: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], bool]:
    """(kwargs, oracle inputs, valid) for one drawn dense call."""
    kind, m, n, k, recipe, seed = p["kind"], p["m"], p["n"], p["k"], p["recipe"], p["seed"]
    lay = p["layout"].upper() if isinstance(p["layout"], str) else p["layout"]
    valid = lay in ("NT", "NN", "TN", "TT")
    a_t = valid and lay[0] == "T"
    b_t = valid and lay[1] == "N"
    dt_a = _TORCH_DT.get(kind, FP8)
    dt_b = BF16 if kind == "mixed" else dt_a
    valid &= kind in ("fp8", "bf16")
    fp8 = kind in ("fp8", "mixed")
    a = _make((m, k), dt_a, seed)
    b = _make((n, k), dt_b, seed + 1)
    kw: dict[str, Any] = {"layout": p["layout"]}

    def passed(x: torch.Tensor, transposed: bool, how: str) -> Any:
        shaped = x.t() if transposed else x
        if how == "list":
            return shaped.float().tolist()
        if how == "tuple":
            return (shaped, None)
        if how == "none":
            return None
        if how == "3d":
            return shaped.unsqueeze(0).contiguous()
        return _storage(shaped, how)

    kw["a"] = passed(a, a_t, p["a_how"])
    kw["b"] = passed(b, b_t, p["b_how"])
    for key in ("a", "b"):
        how = p[f"{key}_how"]
        if how in ("list", "tuple", "none", "3d"):
            valid = False
        elif isinstance(kw[key], torch.Tensor):
            valid &= _rule_ok(kw[key])
    kb = k_blocks(k)
    sa = sb = None
    if fp8:
        g = gen(seed + 2)
        if recipe == "ue8m0":
            sa = L.pack_ue8m0_to_int(L.ceil_to_ue8m0(torch.rand(m, kb, generator=g) + 0.5))
            sb = L.pack_ue8m0_to_int(L.ceil_to_ue8m0(torch.rand(n, kb, generator=g) + 0.5))
        else:
            sa = torch.rand(m, kb, generator=g) + 0.5
            sb = torch.rand(k_blocks(n) if recipe == "1d2d" else n, kb, generator=g) + 0.5
        for key, sf, transposed in (("a_scale", sa, a_t), ("b_scale", sb, b_t)):
            how = p["sa_how" if key == "a_scale" else "sb_how"]
            given_sf: Any = sf.t() if transposed else sf
            if how == "none":
                given_sf = None
            elif how == "rows+1":
                given_sf = torch.ones(sf.shape[0] + 1, sf.shape[1], dtype=sf.dtype)
            elif how == "kb+1":
                given_sf = torch.ones(sf.shape[0], sf.shape[1] + 1, dtype=sf.dtype)
            elif how == "f64":
                given_sf = given_sf.double()
            elif how == "int":
                given_sf = given_sf.to(torch.int32) if sf.dtype != torch.int32 else given_sf.float()
            elif how == "untransposed":
                given_sf = sf
            elif how == "numpy":
                given_sf = given_sf.float().numpy()
            kw[key] = given_sf
            if how == "untransposed":
                valid &= not transposed or sf.shape[0] == sf.shape[1]
            elif how != "ok":
                valid = False
        if p["rec_how"] == "true":
            kw["recipe"] = recipe
        elif p["rec_how"] == "bogus":
            kw["recipe"] = "bogus"
            valid = False
        elif p["rec_how"] == "other":
            kw["recipe"] = "1d1d" if recipe == "1d2d" else "1d2d"
            valid &= recipe != "ue8m0" and n <= 1 and p["sb_how"] == "ok"
    if kind == "mixed":
        valid = False
    d = None
    d_dtype = p["d_dtype"]
    if p["d_how"] == "ok":
        d = torch.full((m, n), float("nan"), dtype=d_dtype)
    elif p["d_how"] == "f16":
        d, valid = torch.zeros(m, n, dtype=torch.float16), False
    elif p["d_how"] == "shape":
        d, valid = torch.zeros(m, n + 1, dtype=d_dtype), False
    elif p["d_how"] == "transposed":
        d = torch.zeros(n, m, dtype=d_dtype).t()
        valid &= n <= 1 or (m <= 1 and _rule_ok(d))
    elif p["d_how"] == "expanded":
        d = expanded(torch.zeros(m, n, dtype=d_dtype)) if m and n else torch.zeros(m, n, dtype=d_dtype)
        valid &= m <= 1
    elif p["d_how"] == "offset":
        d = misptr(torch.zeros(m, n, dtype=d_dtype))
        valid &= d.numel() == 0
    elif p["d_how"] == "pad1":
        d = padded_rows(torch.zeros(m, n, dtype=d_dtype), 1)
        valid &= _rule_ok(d)
    if d is not None:
        kw["d"] = d
    eff_d_dtype = d.dtype if d is not None else None
    c = None
    g = gen(seed + 3)
    if p["c_how"] in ("f32", "bf16", "f16"):
        c_dt = {"f32": FP32, "bf16": BF16, "f16": torch.float16}[p["c_how"]]
        c = (torch.randn(m, n, generator=g) * 10).to(c_dt)
        valid &= c_dt != torch.float16
    elif p["c_how"] == "is_d":
        if d is not None and p["d_how"] == "ok":
            d.copy_(torch.randn(m, n, generator=g) * 10)
            c = d
    elif p["c_how"] == "shape":
        c, valid = torch.zeros(m + 1, n), False
    elif p["c_how"] == "transposed":
        c = torch.randn(n, m, generator=g).t()
        valid &= n <= 1 or (m <= 1 and _rule_ok(c))
    if c is not None:
        kw["c"] = c
    out_dtype = p["out_dtype"]
    if out_dtype == "match":
        out_dtype = d.dtype if d is not None else d_dtype
    elif out_dtype == "other":
        out_dtype = FP32 if d is not None and d.dtype == BF16 else BF16
        valid &= d is None
    if out_dtype is not None:
        kw["out_dtype"] = out_dtype
    if eff_d_dtype is None:
        eff_d_dtype = out_dtype if out_dtype is not None else (
            c.dtype if c is not None else BF16)
        valid &= eff_d_dtype in (BF16, FP32)
    else:
        valid &= out_dtype is None or out_dtype == eff_d_dtype
    if c is not None:
        valid &= c.dtype == FP32 or c.dtype == eff_d_dtype
    oracle = {"a": a, "b": b, "sa": sa, "sb": sb, "recipe": recipe if fp8 else "none",
              "c": None if c is None else c.clone()}
    return kw, oracle, valid


@settings(max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(dense_calls())
def test_fuzz_dense(p: dict[str, Any]) -> None:
    kw, o, valid = _build_dense(p)
    try:
        out = dgreg.gemm(**kw)
    except Exception as exc:
        problem = _unexpected(exc, "gemm")
        assert problem is None, problem
        assert not valid, f"a valid call was rejected: {exc}"
        return
    if "d" in kw:
        assert out is kw["d"]
    m, n = o["a"].shape[0], o["b"].shape[0]
    assert out.shape == (m, n)
    if m and n:
        expected, mag = _oracle(o["a"], o["b"], o["sa"], o["sb"], o["recipe"], o["c"])
        assert _close(out, expected, mag), "wrong result from an accepted call"


@st.composite
def m_contiguous_calls(draw: st.DrawFn) -> dict[str, Any]:
    groups = draw(st.integers(1, 3))
    blocks = draw(st.lists(st.tuples(st.integers(-1, groups - 1), st.integers(0, 128)),
                           min_size=0, max_size=3))
    tail = draw(st.integers(0, 5))
    corrupt = draw(st.one_of(st.none(), st.tuples(st.integers(0, 10_000),
                                                  st.integers(-3, groups + 1))))
    psum = draw(st.booleans())
    ends = draw(st.lists(st.integers(-5, 400), min_size=groups, max_size=groups))
    sorted_ends = draw(st.booleans())
    kind = draw(st.sampled_from(["fp8", "bf16"]))
    return {"groups": groups, "blocks": blocks, "tail": tail, "corrupt": corrupt,
            "psum": psum, "ends": sorted(ends) if sorted_ends else ends, "kind": kind}


def _psum_ids(ends: list[int], m: int) -> list[int] | None:
    ids, start = [-1] * m, 0
    for gi, end in enumerate(ends):
        if end < start or end > m:
            return None
        ids[start:end] = [gi] * (end - start)
        start = -(-end // 128) * 128
    return ids


def _ids_ok(ids: list[int], groups: int) -> bool:
    """The contract: ids in [-1, G); in every 128-row block, the rows of at most one group,
    placed first, then -1 padding."""
    if any(x < -1 or x >= groups for x in ids):
        return False
    for s in range(0, len(ids), 128):
        block = ids[s:s + 128]
        valid = [x >= 0 for x in block]
        if len({x for x in block if x >= 0}) > 1 or valid != sorted(valid, reverse=True):
            return False
    return True


@settings(max_examples=80, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(m_contiguous_calls())
def test_fuzz_m_contiguous(p: dict[str, Any]) -> None:
    groups = p["groups"]
    ids: list[int] = []
    for gid, fill in p["blocks"]:
        ids += [gid] * fill + [-1] * (128 - fill)
    ids += [-1] * p["tail"]
    if p["corrupt"] is not None and ids:
        pos, val = p["corrupt"]
        ids[pos % len(ids)] = val
    m = len(ids)
    kn, kk = 32, 144
    dt = FP8 if p["kind"] == "fp8" else BF16
    a, b = _make((m, kk), dt, 1), _make((groups, kn, kk), dt, 2)
    kw: dict[str, Any] = {}
    sa = sb = None
    if dt == FP8:
        sa, sb = _sf(m, 2), _sf(groups, 1, 2)
        kw.update(a_scale=sa, b_scale=sb)
    if p["psum"]:
        row_ids = _psum_ids(p["ends"], m)
        valid = row_ids is not None
        kw["grouped_layout"], kw["use_psum_layout"] = i32(p["ends"]), True
    else:
        row_ids = ids
        valid = _ids_ok(ids, groups)
        kw["grouped_layout"] = i32(ids)
    d = torch.full((m, kn), float("nan"), dtype=BF16)
    try:
        out = dgreg.m_grouped_gemm_contiguous(a, b, d, **kw)
    except Exception as exc:
        problem = _unexpected(exc, "m_contiguous")
        assert problem is None, problem
        assert not valid, f"a valid call was rejected: {exc}"
        return
    assert out is d
    if m == 0:
        return  # M = 0 returns before looking at grouped_layout's values
    assert valid, "an invalid grouped_layout was accepted"
    for row, gid in enumerate(row_ids or []):
        if gid < 0:
            assert torch.isnan(d[row].float()).all(), f"row {row} (no group) was written"
        else:
            e, mag = _oracle(a[row:row + 1], b[gid], None if sa is None else sa[row:row + 1],
                             None if sb is None else sb[gid], "1d2d" if dt == FP8 else "none")
            assert _close(d[row:row + 1], e, mag), f"row {row} of group {gid} is wrong"


@settings(max_examples=60, deadline=None, database=None)
@given(st.lists(st.integers(-2, 10), min_size=1, max_size=3), st.sampled_from([0, 1, 8]),
       st.sampled_from(["fp8", "bf16"]))
def test_fuzz_m_masked(masked: list[int], m_max: int, kind: str) -> None:
    groups = len(masked)
    dt = FP8 if kind == "fp8" else BF16
    a, b = _make((groups, m_max, 128), dt, 3), _make((groups, 16, 128), dt, 4)
    kw: dict[str, Any] = {}
    sa = sb = None
    if dt == FP8:
        sa, sb = _sf(groups, m_max, 1), _sf(groups, 16, 1)
        kw.update(a_scale=sa, b_scale=sb)
    d = torch.full((groups, m_max, 16), float("nan"), dtype=FP32)
    valid = all(0 <= x <= m_max for x in masked) or m_max == 0
    try:
        out = dgreg.m_grouped_gemm_masked(a, b, d, masked_m=i32(masked), **kw)
    except Exception as exc:
        problem = _unexpected(exc, "m_masked")
        assert problem is None, problem
        assert not valid, f"a valid call was rejected: {exc}"
        return
    assert valid, f"masked_m {masked} with M_max {m_max} was accepted"
    assert out is d
    for gi, cnt in enumerate(masked):
        if m_max == 0:
            break
        assert torch.isnan(d[gi, cnt:]).all()
        if cnt:
            e, mag = _oracle(a[gi, :cnt], b[gi], None if sa is None else sa[gi, :cnt],
                             None if sb is None else sb[gi], "1d1d" if dt == FP8 else "none")
            assert _close(d[gi, :cnt], e, mag)


@settings(max_examples=60, deadline=None, database=None)
@given(st.lists(st.sampled_from([0, 8, 16, 100, 128, 256]), min_size=1, max_size=4),
       st.integers(-16, 16).filter(lambda x: x % 8 == 0), st.sampled_from(["fp8", "bf16"]),
       st.booleans())
def test_fuzz_k_grouped(ks: list[int], extra: int, kind: str, with_c: bool) -> None:
    total = sum(ks) + extra
    if total < 0:
        total = 0
    dt = FP8 if kind == "fp8" else BF16
    m, n = 16, 32
    a, b = _make((total, m), dt, 5), _make((total, n), dt, 6)
    kw: dict[str, Any] = {}
    sa = sb = None
    if dt == FP8:
        sa, sb = _sf(k_blocks(total), m), _sf(k_blocks(total), n)
        kw.update(a_scale=sa, b_scale=sb)
    c = torch.randn(len(ks), m, n, generator=gen()) if with_c else None
    valid = sum(ks) == total and (dt == BF16 or all(v % 128 == 0 for v in ks))
    try:
        out = dgreg.k_grouped_gemm_contiguous(a, b, ks=ks, c=c, **kw)
    except Exception as exc:
        problem = _unexpected(exc, "k_grouped")
        assert problem is None, problem
        assert not valid, f"a valid call was rejected: {exc}"
        return
    assert valid, f"ks {ks} with sum K {total} was accepted"
    start = 0
    for gi, kg in enumerate(ks):
        sl = slice(start, start + kg)
        e, mag = _oracle(a[sl].t(), b[sl].t(), None if sa is None else sa[start // 128:(start + kg) // 128].t(),
                         None if sb is None else sb[start // 128:(start + kg) // 128].t(),
                         "1d1d" if dt == FP8 else "none", None if c is None else c[gi])
        assert _close(out[gi], e, mag), f"group {gi} is wrong"
        start += kg


def test_errors_are_dgreg_errors() -> None:
    """The exception types the API raises on purpose share the documented base class."""
    assert issubclass(InvalidArgumentError, DgregError)
    assert issubclass(InvalidArgumentError, ValueError)
    assert issubclass(UnsupportedSpecError, DgregError)


# -- validation must not depend on what was called before ---------------------------------------

HISTORY_CASES = [
    ("m_masked-bf16", {"expected_m": 1}, {"expected_m": True}, "expected_m"),
    ("m_masked-fp8", {"expected_m": 2}, {"expected_m": 2.0}, "expected_m"),
    ("m_contiguous-bf16", {"expected_m": 1}, {"expected_m": True}, "expected_m"),
    ("m_contiguous-bf16", {"use_psum_layout": False}, {"use_psum_layout": 0}, "use_psum_layout"),
    ("m_contiguous-fp8", {"use_psum_layout": True, "grouped_layout": i32([128, 228])},
     {"use_psum_layout": 1, "grouped_layout": i32([128, 228])}, "use_psum_layout"),
    ("k_grouped-bf16", {"ks": [16, 48]}, {"ks": [16.0, 48.0]}, "ks"),
    ("k_grouped-bf16", {"ks": [1, 63]}, {"ks": [True, 63]}, "ks"),
    ("k_grouped-fp8", {"ks": [128, 256]}, {"ks": np.array([128, 256])}, "ks"),
]


@pytest.mark.parametrize(("base_name", "good", "bad", "argument"), HISTORY_CASES,
                         ids=[f"{c[0]}:{c[2]!r}" for c in HISTORY_CASES])
def test_validation_independent_of_previous_calls(base_name: str, good: dict[str, Any],
                                                  bad: dict[str, Any], argument: str) -> None:
    """A bad argument that compares equal to a good one (True == 1, 2.0 == 2, numpy ints)
    is rejected even right after the good call with the same tensors succeeded."""
    func = FUNCS[base_name.rsplit("-", 1)[0]]
    kw = base(base_name)
    with pytest.raises(InvalidArgumentError) as fresh:
        func(**{**kw, **bad})
    assert fresh.value.argument.split("[")[0] == argument
    func(**{**kw, **good})
    try:
        func(**{**kw, **bad})
    except InvalidArgumentError as exc:
        assert exc.argument.split("[")[0] == argument
    else:
        pytest.fail(f"{bad!r} was rejected in a fresh process but accepted after {good!r}")
