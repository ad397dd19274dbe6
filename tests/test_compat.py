"""DeepGEMM-compatible names: DeepGEMM's calling conventions, the generic API's results.

FP8 operands are ``(tensor, scales)`` pairs; the suffix says how a and b are passed
(``nt``: a [M, K], b [N, K]; ``nn``: b [K, N]; ``tn``: a [K, M], b [K, N]; ``tt``: a [K, M],
b [N, K]), scales transposed along with their operand; ``d`` is required.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import pytest
import torch
from api_inputs import BF16, FP8, FP32, gen, i32, operand, scales

import dgreg
from dgreg import compat
from dgreg import layout as L
from dgreg.errors import InvalidArgumentError

pytestmark = pytest.mark.filterwarnings("ignore::dgreg.errors.FallbackWarning")


def _nan(shape: tuple[int, ...], dtype: torch.dtype = BF16) -> torch.Tensor:
    return torch.full(shape, float("nan"), dtype=dtype)


def _same(x: torch.Tensor, y: torch.Tensor) -> None:
    """Bitwise equal, NaN where the other is NaN (rows neither call writes)."""
    assert x.shape == y.shape and x.dtype == y.dtype
    assert torch.equal(torch.isnan(x.float()), torch.isnan(y.float()))
    assert torch.equal(torch.nan_to_num(x.float()), torch.nan_to_num(y.float()))


M, N, K = 32, 160, 256
KB, NB = 2, 2


def _pass(x: torch.Tensor, transposed: bool) -> torch.Tensor:
    return x.t().contiguous() if transposed else x


# -- dense ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("with_c", [False, True])
@pytest.mark.parametrize("layout", ["nt", "nn", "tn", "tt"])
@pytest.mark.parametrize("recipe", ["1d2d", "1d1d"])
def test_fp8_dense(layout: str, recipe: str, with_c: bool) -> None:
    a_t, b_t = layout[0] == "t", layout[1] == "n"
    a, b = operand((M, K), FP8, 1), operand((N, K), FP8, 2)
    sa, sb = scales(M, KB, seed=100), scales(NB if recipe == "1d2d" else N, KB, seed=101)
    c = torch.randn(M, N, generator=gen(3)) if with_c else None
    fn = getattr(dgreg, f"fp8_gemm_{layout}")
    d = _nan((M, N), FP32 if with_c else BF16)
    a_pair = (_pass(a, a_t), _pass(sa, a_t))
    b_pair = (_pass(b, b_t), _pass(sb, b_t))
    assert fn(a_pair, b_pair, d, c=c) is d
    expected = dgreg.gemm(a, b, _nan((M, N), d.dtype), c=c, a_scale=sa, b_scale=sb)
    _same(d, expected)


@pytest.mark.parametrize("layout", ["nt", "nn", "tn", "tt"])
def test_fp8_dense_ue8m0(layout: str) -> None:
    a_t, b_t = layout[0] == "t", layout[1] == "n"
    a, b = operand((M, K), FP8, 4), operand((N, K), FP8, 5)
    sa = L.get_mn_major_tma_aligned_packed_ue8m0_tensor(scales(M, KB, seed=100))
    sb = L.get_mn_major_tma_aligned_packed_ue8m0_tensor(scales(N, KB, seed=102))
    d = _nan((M, N))
    getattr(dgreg, f"fp8_gemm_{layout}")((_pass(a, a_t), _pass(sa, a_t)),
                                         (_pass(b, b_t), _pass(sb, b_t)), d)
    _same(d, dgreg.gemm(a, b, a_scale=sa, b_scale=sb))


@pytest.mark.parametrize("with_c", [False, True])
@pytest.mark.parametrize("layout", ["nt", "nn", "tn", "tt"])
def test_bf16_dense(layout: str, with_c: bool) -> None:
    a_t, b_t = layout[0] == "t", layout[1] == "n"
    a, b = operand((M, 64), BF16, 6), operand((N, 64), BF16, 7)
    c = torch.randn(M, N, generator=gen(8)).to(BF16) if with_c else None
    d = _nan((M, N))
    assert getattr(dgreg, f"bf16_gemm_{layout}")(_pass(a, a_t), _pass(b, b_t), d, c=c) is d
    _same(d, dgreg.gemm(a, b, c=c))


def test_fp8_dense_in_place_accumulation() -> None:
    a, b = operand((M, K), FP8, 9), operand((N, K), FP8, 10)
    sa, sb = scales(M, KB, seed=100), scales(N, KB, seed=103)
    d = torch.randn(M, N, generator=gen(11))
    d2 = d.clone()
    dgreg.fp8_gemm_nt((a, sa), (b, sb), d, c=d, recipe=(1, 1, 128))
    dgreg.gemm(a, b, d2, c=d2, a_scale=sa, b_scale=sb, recipe="1d1d")
    _same(d, d2)


@pytest.mark.parametrize(("kwargs", "recipe"), [
    ({"recipe": (1, 128, 128)}, "1d2d"),
    ({"recipe": (1, 1, 128)}, "1d1d"),
    ({"recipe_a": (1, 128), "recipe_b": (128, 128)}, "1d2d"),
    ({"recipe_a": (1, 128), "recipe_b": (1, 128)}, "1d1d"),
    ({"recipe_b": (1, 128)}, "1d1d"),
])
def test_fp8_recipe_forms(kwargs: dict[str, Any], recipe: str) -> None:
    a, b = operand((M, K), FP8, 12), operand((N, K), FP8, 13)
    sa, sb = scales(M, KB, seed=100), scales(NB if recipe == "1d2d" else N, KB, seed=104)
    d = _nan((M, N))
    dgreg.fp8_gemm_nt((a, sa), (b, sb), d, **kwargs)
    _same(d, dgreg.gemm(a, b, a_scale=sa, b_scale=sb, recipe=recipe))


def test_fp8_packed_ue8m0_with_per_row_recipe() -> None:
    """DeepGEMM's SM100 convention: recipe (1, 1, 128) with int32 packed scales is UE8M0.

    The recipe tuple gives the granularity; the scales' dtype gives the format."""
    a, b = operand((M, K), FP8, 14), operand((N, K), FP8, 15)
    sa = L.get_mn_major_tma_aligned_packed_ue8m0_tensor(scales(M, KB, seed=100))
    sb = L.get_mn_major_tma_aligned_packed_ue8m0_tensor(scales(N, KB, seed=105))
    d = _nan((M, N))
    dgreg.fp8_gemm_nt((a, sa), (b, sb), d, recipe=(1, 1, 128))
    _same(d, dgreg.gemm(a, b, a_scale=sa, b_scale=sb))
    d2 = _nan((M, N))
    dgreg.fp8_gemm_nt((a, sa), (b, sb), d2, recipe_a=(1, 128), recipe_b=(1, 128))
    _same(d2, d)


# -- M-grouped ------------------------------------------------------------------------------------

G = 2
IDS = [0] * 100 + [-1] * 28 + [1] * 128 + [-1] * 5


@pytest.mark.parametrize("layout", ["nt", "nn"])
@pytest.mark.parametrize("recipe", ["1d2d", "1d1d"])
def test_fp8_m_contiguous(layout: str, recipe: str) -> None:
    m = len(IDS)
    a, b = operand((m, K), FP8, 16), operand((G, N, K), FP8, 17)
    sa, sb = scales(m, KB, seed=100), scales(G, NB if recipe == "1d2d" else N, KB, seed=106)
    nn = layout == "nn"
    b_pass = b.transpose(1, 2).contiguous() if nn else b
    sb_pass = sb.transpose(1, 2).contiguous() if nn else sb
    d = _nan((m, N))
    fn = getattr(dgreg, f"m_grouped_fp8_gemm_{layout}_contiguous")
    assert fn((a, sa), (b_pass, sb_pass), d, i32(IDS)) is d
    expected = dgreg.m_grouped_gemm_contiguous(a, b, _nan((m, N)), grouped_layout=i32(IDS),
                                               a_scale=sa, b_scale=sb)
    _same(d, expected)


@pytest.mark.parametrize("layout", ["nt", "nn"])
def test_bf16_m_contiguous(layout: str) -> None:
    m = len(IDS)
    a, b = operand((m, 64), BF16, 18), operand((G, N, 64), BF16, 19)
    b_pass = b.transpose(1, 2).contiguous() if layout == "nn" else b
    d = _nan((m, N))
    getattr(dgreg, f"m_grouped_bf16_gemm_{layout}_contiguous")(a, b_pass, d, i32(IDS))
    _same(d, dgreg.m_grouped_gemm_contiguous(a, b, _nan((m, N)), grouped_layout=i32(IDS)))


@pytest.mark.parametrize("kind", ["fp8", "bf16"])
def test_m_contiguous_psum(kind: str) -> None:
    ends = [100, 228]  # group 1 starts at align(100, 128) = 128
    m = 256
    dt = FP8 if kind == "fp8" else BF16
    a, b = operand((m, K), dt, 20), operand((G, N, K), dt, 21)
    d = _nan((m, N))
    if kind == "fp8":
        sa, sb = scales(m, KB, seed=100), scales(G, NB, KB, seed=107)
        dgreg.m_grouped_fp8_gemm_nt_contiguous((a, sa), (b, sb), d, i32(ends),
                                               use_psum_layout=True,
                                               expected_m_for_psum_layout=100)
        expected = dgreg.m_grouped_gemm_contiguous(a, b, _nan((m, N)), grouped_layout=i32(ends),
                                                   use_psum_layout=True, a_scale=sa, b_scale=sb)
    else:
        dgreg.m_grouped_bf16_gemm_nt_contiguous(a, b, d, i32(ends), use_psum_layout=True,
                                                expected_m_for_psum_layout=100)
        expected = dgreg.m_grouped_gemm_contiguous(a, b, _nan((m, N)), grouped_layout=i32(ends),
                                                   use_psum_layout=True)
    _same(d, expected)
    assert torch.isnan(d[100:128].float()).all() and torch.isnan(d[228:].float()).all()


MASKED = [5, 32]


@pytest.mark.parametrize("name", ["m_grouped_fp8_gemm_nt_masked", "fp8_m_grouped_gemm_nt_masked"])
def test_fp8_masked(name: str) -> None:
    a, b = operand((G, M, K), FP8, 22), operand((G, N, K), FP8, 23)
    sa, sb = scales(G, M, KB, seed=100), scales(G, NB, KB, seed=108)
    d = _nan((G, M, N))
    assert getattr(dgreg, name)((a, sa), (b, sb), d, i32(MASKED), 16) is d
    _same(d, dgreg.m_grouped_gemm_masked(a, b, _nan((G, M, N)), masked_m=i32(MASKED),
                                         a_scale=sa, b_scale=sb))
    assert torch.isnan(d[0, 5:].float()).all()


@pytest.mark.parametrize("name", ["m_grouped_bf16_gemm_nt_masked", "bf16_m_grouped_gemm_nt_masked"])
def test_bf16_masked(name: str) -> None:
    a, b = operand((G, M, 64), BF16, 24), operand((G, N, 64), BF16, 25)
    d = _nan((G, M, N))
    getattr(dgreg, name)(a, b, d, i32(MASKED), 16)
    _same(d, dgreg.m_grouped_gemm_masked(a, b, _nan((G, M, N)), masked_m=i32(MASKED)))


# -- K-grouped ------------------------------------------------------------------------------------

KS = [128, 0, 256]


@pytest.mark.parametrize("with_c", [False, True])
def test_fp8_k_grouped(with_c: bool) -> None:
    total, m, n = sum(KS), 16, 32
    a, b = operand((total, m), FP8, 26), operand((total, n), FP8, 27)
    sa, sb = scales(total // 128, m, seed=100), scales(total // 128, n, seed=109)
    c = torch.randn(len(KS), m, n, generator=gen(28)) if with_c else None
    d = _nan((len(KS), m, n), FP32)
    out = dgreg.k_grouped_fp8_gemm_tn_contiguous((a, sa), (b, sb), d, KS, i32(KS), c)
    assert out is d
    _same(d, dgreg.k_grouped_gemm_contiguous(a, b, _nan((len(KS), m, n), FP32), ks=KS, c=c,
                                             a_scale=sa, b_scale=sb))


def test_fp8_k_grouped_packed_ue8m0() -> None:
    """SM100's K-grouped GEMM takes packed UE8M0 scales with the default recipe (1, 1, 128)."""
    ks = [512, 512]
    total, m, n = sum(ks), 16, 32
    a, b = operand((total, m), FP8, 29), operand((total, n), FP8, 30)
    pa = L.pack_ue8m0_to_int(L.ceil_to_ue8m0(scales(m, total // 128, seed=100))).t()
    pb = L.pack_ue8m0_to_int(L.ceil_to_ue8m0(scales(n, total // 128, seed=110))).t()
    d = _nan((2, m, n), FP32)
    dgreg.k_grouped_fp8_gemm_tn_contiguous((a, pa), (b, pb), d, ks, i32(ks))
    _same(d, dgreg.k_grouped_gemm_contiguous(a, b, _nan((2, m, n), FP32), ks=ks,
                                             a_scale=pa, b_scale=pb))


def test_bf16_k_grouped() -> None:
    ks = [16, 0, 48]
    a, b = operand((64, 16), BF16, 31), operand((64, 32), BF16, 32)
    c = torch.randn(3, 16, 32, generator=gen(33))
    d = c.clone()
    dgreg.k_grouped_bf16_gemm_tn_contiguous(a, b, d, ks, i32(ks), d)
    _same(d, dgreg.k_grouped_gemm_contiguous(a, b, ks=ks, c=c))


# -- names older DeepGEMM releases used ---------------------------------------------------------

def test_old_dense_alias() -> None:
    a, b = operand((M, K), FP8, 34), operand((N, K), FP8, 35)
    sa, sb = scales(M, KB, seed=100), scales(NB, KB, seed=111)
    out = _nan((M, N))
    assert dgreg.gemm_fp8_fp8_bf16_nt((a, sa), (b, sb), out) is out
    _same(out, dgreg.gemm(a, b, a_scale=sa, b_scale=sb))


def test_old_contiguous_alias() -> None:
    m = len(IDS)
    a, b = operand((m, K), FP8, 36), operand((G, N, K), FP8, 37)
    sa, sb = scales(m, KB, seed=100), scales(G, NB, KB, seed=112)
    out = _nan((m, N))
    dgreg.m_grouped_gemm_fp8_fp8_bf16_nt_contiguous((a, sa), (b, sb), out, i32(IDS))
    _same(out, dgreg.m_grouped_gemm_contiguous(a, b, _nan((m, N)), grouped_layout=i32(IDS),
                                               a_scale=sa, b_scale=sb))


def test_old_masked_alias() -> None:
    a, b = operand((G, M, K), FP8, 38), operand((G, N, K), FP8, 39)
    sa, sb = scales(G, M, KB, seed=100), scales(G, NB, KB, seed=113)
    out = _nan((G, M, N))
    dgreg.m_grouped_gemm_fp8_fp8_bf16_nt_masked((a, sa), (b, sb), out, i32(MASKED), 16)
    _same(out, dgreg.m_grouped_gemm_masked(a, b, _nan((G, M, N)), masked_m=i32(MASKED),
                                           a_scale=sa, b_scale=sb))


def test_every_compat_name_is_tested_and_exported() -> None:
    tested = {
        *(f"fp8_gemm_{x}" for x in ("nt", "nn", "tn", "tt")),
        *(f"bf16_gemm_{x}" for x in ("nt", "nn", "tn", "tt")),
        "m_grouped_fp8_gemm_nt_contiguous", "m_grouped_fp8_gemm_nn_contiguous",
        "m_grouped_bf16_gemm_nt_contiguous", "m_grouped_bf16_gemm_nn_contiguous",
        "m_grouped_fp8_gemm_nt_masked", "fp8_m_grouped_gemm_nt_masked",
        "m_grouped_bf16_gemm_nt_masked", "bf16_m_grouped_gemm_nt_masked",
        "k_grouped_fp8_gemm_tn_contiguous", "k_grouped_bf16_gemm_tn_contiguous",
        "gemm_fp8_fp8_bf16_nt", "m_grouped_gemm_fp8_fp8_bf16_nt_contiguous",
        "m_grouped_gemm_fp8_fp8_bf16_nt_masked",
    }
    assert set(compat.__all__) == tested
    for name in compat.__all__:
        assert getattr(dgreg, name) is getattr(compat, name)


# -- bad arguments --------------------------------------------------------------------------------

def _fp8_calls() -> dict[str, tuple[Callable[..., Any], dict[str, Any]]]:
    """name -> (function, valid keyword arguments) for every FP8 compat entry point."""
    a, b = operand((M, K), FP8, 40), operand((N, K), FP8, 41)
    sa, sb = scales(M, KB, seed=100), scales(NB, KB, seed=114)
    dense = {
        f"fp8_gemm_{x}": (getattr(dgreg, f"fp8_gemm_{x}"),
                          {"a": (_pass(a, x[0] == "t"), _pass(sa, x[0] == "t")),
                           "b": (_pass(b, x[1] == "n"), _pass(sb, x[1] == "n")),
                           "d": _nan((M, N))})
        for x in ("nt", "nn", "tn", "tt")}
    m = len(IDS)
    ga, gb = operand((m, K), FP8, 42), operand((G, N, K), FP8, 43)
    gsa, gsb = scales(m, KB, seed=100), scales(G, NB, KB, seed=115)
    contiguous = {
        "m_grouped_fp8_gemm_nt_contiguous": (dgreg.m_grouped_fp8_gemm_nt_contiguous, {
            "a": (ga, gsa), "b": (gb, gsb), "d": _nan((m, N)), "grouped_layout": i32(IDS)}),
        "m_grouped_fp8_gemm_nn_contiguous": (dgreg.m_grouped_fp8_gemm_nn_contiguous, {
            "a": (ga, gsa), "b": (gb.transpose(1, 2).contiguous(), gsb.transpose(1, 2).contiguous()),
            "d": _nan((m, N)), "grouped_layout": i32(IDS)}),
    }
    ma, mb = operand((G, M, K), FP8, 44), operand((G, N, K), FP8, 45)
    masked_kw = {"a": (ma, scales(G, M, KB, seed=100)), "b": (mb, scales(G, NB, KB, seed=116)),
                 "d": _nan((G, M, N)), "masked_m": i32(MASKED), "expected_m": 16}
    masked = {name: (getattr(dgreg, name), dict(masked_kw))
              for name in ("m_grouped_fp8_gemm_nt_masked", "fp8_m_grouped_gemm_nt_masked")}
    ka, kb = operand((384, 16), FP8, 46), operand((384, 32), FP8, 47)
    k_grouped = {"k_grouped_fp8_gemm_tn_contiguous": (dgreg.k_grouped_fp8_gemm_tn_contiguous, {
        "a": (ka, scales(3, 16, seed=100)), "b": (kb, scales(3, 32, seed=117)),
        "d": _nan((2, 16, 32), FP32),
        "ks_cpu": [128, 256], "grouped_layout": i32([128, 256])})}
    return {**dense, **contiguous, **masked, **k_grouped}


def _bf16_calls() -> dict[str, tuple[Callable[..., Any], dict[str, Any]]]:
    a, b = operand((M, 64), BF16, 48), operand((N, 64), BF16, 49)
    dense = {f"bf16_gemm_{x}": (getattr(dgreg, f"bf16_gemm_{x}"),
                                {"a": _pass(a, x[0] == "t"), "b": _pass(b, x[1] == "n"),
                                 "d": _nan((M, N))})
             for x in ("nt", "nn", "tn", "tt")}
    m = len(IDS)
    ga, gb = operand((m, 64), BF16, 50), operand((G, N, 64), BF16, 51)
    contiguous = {
        "m_grouped_bf16_gemm_nt_contiguous": (dgreg.m_grouped_bf16_gemm_nt_contiguous, {
            "a": ga, "b": gb, "d": _nan((m, N)), "grouped_layout": i32(IDS)}),
        "m_grouped_bf16_gemm_nn_contiguous": (dgreg.m_grouped_bf16_gemm_nn_contiguous, {
            "a": ga, "b": gb.transpose(1, 2).contiguous(), "d": _nan((m, N)),
            "grouped_layout": i32(IDS)}),
    }
    masked_kw = {"a": operand((G, M, 64), BF16, 52), "b": operand((G, N, 64), BF16, 53),
                 "d": _nan((G, M, N)), "masked_m": i32(MASKED), "expected_m": 16}
    masked = {name: (getattr(dgreg, name), dict(masked_kw))
              for name in ("m_grouped_bf16_gemm_nt_masked", "bf16_m_grouped_gemm_nt_masked")}
    k_grouped = {"k_grouped_bf16_gemm_tn_contiguous": (dgreg.k_grouped_bf16_gemm_tn_contiguous, {
        "a": operand((64, 16), BF16, 54), "b": operand((64, 32), BF16, 55),
        "d": _nan((2, 16, 32), FP32), "ks_cpu": [16, 48], "grouped_layout": i32([16, 48])})}
    return {**dense, **contiguous, **masked, **k_grouped}


FP8_NAMES = sorted(_fp8_calls())
BF16_NAMES = sorted(_bf16_calls())


def _raises_naming(fn: Callable[..., Any], kw: dict[str, Any], argument: str) -> None:
    try:
        fn(**kw)
    except InvalidArgumentError as exc:
        assert exc.argument == argument, f"named {exc.argument!r}, expected {argument!r}: {exc}"
        assert f"'{argument}'" in str(exc)
    except Exception as exc:
        pytest.fail(f"expected InvalidArgumentError naming {argument!r}, got "
                    f"{type(exc).__name__}: {exc}")
    else:
        pytest.fail(f"expected InvalidArgumentError naming {argument!r}; the call succeeded")


@pytest.mark.parametrize("name", FP8_NAMES)
def test_fp8_valid_calls(name: str) -> None:
    fn, kw = _fp8_calls()[name]
    assert fn(**kw) is kw["d"]


@pytest.mark.parametrize("name", BF16_NAMES)
def test_bf16_valid_calls(name: str) -> None:
    fn, kw = _bf16_calls()[name]
    assert fn(**kw) is kw["d"]


@pytest.mark.parametrize("bad", ["bare-tensor", "3-tuple", "1-tuple", "None", "dict"])
@pytest.mark.parametrize("which", ["a", "b"])
@pytest.mark.parametrize("name", FP8_NAMES)
def test_fp8_bad_pairs(name: str, which: str, bad: str) -> None:
    fn, kw = _fp8_calls()[name]
    tensor, sf = kw[which]
    kw[which] = {"bare-tensor": tensor, "3-tuple": (tensor, sf, sf), "1-tuple": (tensor,),
                 "None": None, "dict": {"data": tensor, "sf": sf}}[bad]
    _raises_naming(fn, kw, which)


@pytest.mark.parametrize("name", FP8_NAMES)
def test_fp8_names_reject_bf16_operands(name: str) -> None:
    """An ``fp8_*`` entry point given BF16 tensors with no scales must not quietly run a
    BF16 GEMM (DeepGEMM's FP8 functions only take FP8 data)."""
    fn, kw = _fp8_calls()[name]
    kw["a"] = (kw["a"][0].to(BF16), None)
    kw["b"] = (kw["b"][0].to(BF16), None)
    _raises_naming(fn, kw, "a")


@pytest.mark.parametrize("which", ["a", "b"])
@pytest.mark.parametrize("name", FP8_NAMES)
def test_fp8_names_name_the_bf16_operand(name: str, which: str) -> None:
    """One operand BF16 (scales given): the error is about that operand."""
    fn, kw = _fp8_calls()[name]
    tensor, sf = kw[which]
    kw[which] = (tensor.to(BF16), sf)
    _raises_naming(fn, kw, which)


@pytest.mark.parametrize("name", BF16_NAMES)
def test_bf16_names_reject_fp8_operands(name: str) -> None:
    fn, kw = _bf16_calls()[name]
    kw["a"] = kw["a"].to(FP8)
    kw["b"] = kw["b"].to(FP8)
    _raises_naming(fn, kw, "a")


@pytest.mark.parametrize("name", BF16_NAMES)
def test_bf16_names_reject_pairs(name: str) -> None:
    fn, kw = _bf16_calls()[name]
    kw["a"] = (kw["a"], None)
    _raises_naming(fn, kw, "a")


@pytest.mark.parametrize("name", FP8_NAMES + BF16_NAMES)
def test_d_is_required(name: str) -> None:
    fn, kw = {**_fp8_calls(), **_bf16_calls()}[name]
    kw["d"] = None
    _raises_naming(fn, kw, "d")


RECIPE_NAMES = [n for n in FP8_NAMES if not n.startswith("k_grouped")]


@pytest.mark.parametrize("name", RECIPE_NAMES)
def test_recipe_with_recipe_a_raises(name: str) -> None:
    fn, kw = _fp8_calls()[name]
    _raises_naming(fn, {**kw, "recipe": (1, 128, 128), "recipe_a": (1, 128)}, "recipe")
    _raises_naming(fn, {**kw, "recipe": (1, 128, 128), "recipe_b": (128, 128)}, "recipe")


@pytest.mark.parametrize("bad", [5, "ab", (2, 128), (1, 128, 1), None])
@pytest.mark.parametrize("name", RECIPE_NAMES)
def test_bad_recipe_a_raises(name: str, bad: Any) -> None:
    fn, kw = _fp8_calls()[name]
    if bad is None:  # recipe_b alone, with a granularity DeepGEMM does not have
        kw["recipe_b"] = (64, 64)
        _raises_naming(fn, kw, "recipe_b")
        return
    try:
        fn(**kw, recipe_a=bad)
    except InvalidArgumentError as exc:
        assert exc.argument in ("recipe_a", "recipe_b")
    except Exception as exc:
        pytest.fail(f"recipe_a={bad!r}: {type(exc).__name__}: {exc}")
    else:
        pytest.fail(f"recipe_a={bad!r} was accepted")


@pytest.mark.parametrize("name", RECIPE_NAMES)
def test_bad_recipe_raises(name: str) -> None:
    fn, kw = _fp8_calls()[name]
    _raises_naming(fn, {**kw, "recipe": (2, 2, 2)}, "recipe")
    _raises_naming(fn, {**kw, "recipe": "bogus"}, "recipe")


@pytest.mark.parametrize("value", ["xyz", 5, "mnq", ["m"]])
@pytest.mark.parametrize("name", FP8_NAMES + BF16_NAMES)
def test_compiled_dims_validated(name: str, value: Any) -> None:
    fn, kw = {**_fp8_calls(), **_bf16_calls()}[name]
    _raises_naming(fn, {**kw, "compiled_dims": value}, "compiled_dims")


@pytest.mark.parametrize("value", ["nk", "mn", "mnk", ""])
@pytest.mark.parametrize("name", ["fp8_gemm_nt", "m_grouped_fp8_gemm_nt_masked"])
def test_compiled_dims_accepted(name: str, value: str) -> None:
    fn, kw = _fp8_calls()[name]
    assert fn(**kw, compiled_dims=value) is kw["d"]


FLAG_CASES = [(name, flag) for name in FP8_NAMES + BF16_NAMES
              for flag in ("disable_ue8m0_cast", "ensure_zero_padding", "use_psum_layout")
              if flag in inspect.signature(getattr(compat, name)).parameters]


@pytest.mark.parametrize(("name", "flag"), FLAG_CASES)
def test_bool_flags_validated(name: str, flag: str) -> None:
    fn, kw = {**_fp8_calls(), **_bf16_calls()}[name]
    _raises_naming(fn, {**kw, flag: 1}, flag)


@pytest.mark.parametrize("name", ["k_grouped_fp8_gemm_tn_contiguous",
                                  "k_grouped_bf16_gemm_tn_contiguous"])
def test_k_grouped_rejects_psum(name: str) -> None:
    fn, kw = {**_fp8_calls(), **_bf16_calls()}[name]
    _raises_naming(fn, {**kw, "use_psum_layout": True}, "use_psum_layout")


@pytest.mark.parametrize("name", ["m_grouped_fp8_gemm_nt_masked", "m_grouped_bf16_gemm_nt_masked"])
def test_masked_expected_m_validated(name: str) -> None:
    fn, kw = {**_fp8_calls(), **_bf16_calls()}[name]
    for bad in (0, -3, True, 1.5):
        _raises_naming(fn, {**kw, "expected_m": bad}, "expected_m")


@pytest.mark.parametrize("name", ["m_grouped_fp8_gemm_nt_contiguous",
                                  "m_grouped_bf16_gemm_nt_contiguous"])
def test_expected_m_for_psum_layout_validated(name: str) -> None:
    fn, kw = {**_fp8_calls(), **_bf16_calls()}[name]
    try:
        fn(**kw, expected_m_for_psum_layout=0)
    except InvalidArgumentError as exc:
        assert "expected_m" in exc.argument
    else:
        pytest.fail("expected_m_for_psum_layout=0 was accepted")


def test_k_grouped_ks_cpu_mismatch_names_an_argument() -> None:
    fn, kw = _bf16_calls()["k_grouped_bf16_gemm_tn_contiguous"]
    kw["ks_cpu"] = [16, 40]
    kw["grouped_layout"] = i32([16, 40])
    with pytest.raises(InvalidArgumentError) as info:
        fn(**kw)
    assert info.value.argument in ("ks", "ks_cpu")
