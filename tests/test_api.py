"""Generic API behaviours: outputs, recipe inference, pins, fallback warning, strict mode."""

from __future__ import annotations

import warnings
from typing import Any

import pytest
import torch
from api_inputs import BF16, FP8, FP32, gen, i32, operand, scales

import dgreg
from dgreg import config
from dgreg import layout as L
from dgreg.call import dense_call
from dgreg.errors import FallbackWarning, NoKernelError
from dgreg.spec import Recipe

M, N, K = 32, 160, 256  # NB = 2, KB = 2


def _fp8(recipe: str, m: int = M, n: int = N, k: int = K) -> dict[str, Any]:
    kb = -(-k // 128)
    if recipe == "ue8m0":
        sa = L.pack_ue8m0_to_int(L.ceil_to_ue8m0(scales(m, kb, seed=1)))
        sb = L.pack_ue8m0_to_int(L.ceil_to_ue8m0(scales(n, kb, seed=2)))
    else:
        sa = scales(m, kb, seed=1)
        sb = scales(-(-n // 128) if recipe == "1d2d" else n, kb, seed=2)
    return {"a": operand((m, k), FP8), "b": operand((n, k), FP8, 1), "a_scale": sa, "b_scale": sb}


@pytest.fixture
def quiet() -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FallbackWarning)
        yield


# -- outputs -----------------------------------------------------------------------------------

def _grouped_calls() -> dict[str, tuple[Any, dict[str, Any], tuple[int, ...]]]:
    return {
        "gemm": (dgreg.gemm, {"a": operand((M, 64), BF16), "b": operand((N, 64), BF16, 1)}, (M, N)),
        "m_contiguous": (dgreg.m_grouped_gemm_contiguous,
                         {"a": operand((256, 64), BF16), "b": operand((2, 16, 64), BF16, 1),
                          "grouped_layout": i32([0] * 128 + [1] * 128)}, (256, 16)),
        "m_masked": (dgreg.m_grouped_gemm_masked,
                     {"a": operand((2, 8, 64), BF16), "b": operand((2, 16, 64), BF16, 1),
                      "masked_m": i32([3, 8])}, (2, 8, 16)),
        "k_grouped": (dgreg.k_grouped_gemm_contiguous,
                      {"a": operand((64, 8), BF16), "b": operand((64, 16), BF16, 1),
                       "ks": [16, 48]},
                      (2, 8, 16)),
    }


@pytest.mark.parametrize("name", ["gemm", "m_contiguous", "m_masked", "k_grouped"])
def test_returns_the_given_d(quiet: Any, name: str) -> None:
    func, kw, shape = _grouped_calls()[name]
    d = torch.zeros(shape, dtype=FP32)
    assert func(**kw, d=d) is d
    assert func(**kw, d=d) is d  # and again, through any cached fast path


@pytest.mark.parametrize("name", ["gemm", "m_contiguous", "m_masked"])
def test_allocates_bf16_d_by_default(quiet: Any, name: str) -> None:
    func, kw, shape = _grouped_calls()[name]
    out = func(**kw)
    assert out.dtype == BF16 and tuple(out.shape) == shape and out.is_contiguous()
    again = func(**kw)
    assert again is not out, "a fresh d must be allocated on every call"
    out_fp32 = func(**kw, out_dtype=FP32)
    assert out_fp32.dtype == FP32
    if name == "m_masked":  # rows past masked_m are not written: compare the written ones
        out, out_fp32 = out[:, :3], out_fp32[:, :3]
    torch.testing.assert_close(out_fp32.to(BF16), out, atol=0, rtol=0)


@pytest.mark.parametrize("name", ["m_contiguous", "m_masked"])
def test_allocated_d_has_zeros_where_no_group_writes_on_every_call(quiet: Any, name: str) -> None:
    """The first call allocates through validation, later ones through the cached fast path:
    both must give the documented zeros in rows no group writes, not leftover memory."""
    func, kw, _ = _grouped_calls()[name]
    if name == "m_contiguous":  # make the second expert's last 28 rows padding
        kw["grouped_layout"] = i32([0] * 128 + [1] * 100 + [-1] * 28)
    for call in range(3):
        out = func(**kw)
        unwritten = out[228:] if name == "m_contiguous" else out[0, 3:]
        assert (unwritten == 0).all(), f"call {call}: rows no group writes are not zero"
        # dirty freed memory, so that a later torch.empty would hand back non-zeros
        torch.full(out.shape, 7.0, dtype=out.dtype)
        del out


def test_k_grouped_allocates_fp32(quiet: Any) -> None:
    func, kw, shape = _grouped_calls()["k_grouped"]
    out = func(**kw)
    assert out.dtype == FP32 and tuple(out.shape) == shape


@pytest.mark.parametrize(("c_dtype", "expected"), [(FP32, FP32), (BF16, BF16)])
def test_allocated_d_follows_c(quiet: Any, c_dtype: torch.dtype, expected: torch.dtype) -> None:
    a, b = operand((M, 64), BF16), operand((N, 64), BF16, 1)
    c = torch.randn(M, N, generator=gen(3)).to(c_dtype)
    out = dgreg.gemm(a, b, c=c)
    assert out.dtype == expected
    ref = dgreg.gemm(a, b, out_dtype=FP32)
    torch.testing.assert_close(out.float(), (ref + c.float()).to(expected).float(),
                               rtol=2 ** -7, atol=1e-2)


def test_out_dtype_overrides_c(quiet: Any) -> None:
    a, b = operand((M, 64), BF16), operand((N, 64), BF16, 1)
    out = dgreg.gemm(a, b, c=torch.zeros(M, N), out_dtype=BF16)
    assert out.dtype == BF16


# -- recipe inference ----------------------------------------------------------------------------

@pytest.mark.parametrize("recipe", ["1d2d", "1d1d", "ue8m0"])
def test_recipe_inferred_from_scales(quiet: Any, recipe: str) -> None:
    kw = _fp8(recipe)
    call = dense_call(**kw)
    assert call.spec.recipe == Recipe(recipe)
    assert recipe in call.spec.name
    inferred = dgreg.gemm(**kw, out_dtype=FP32)
    explicit = dgreg.gemm(**kw, recipe=recipe, out_dtype=FP32)
    assert torch.equal(inferred, explicit)


@pytest.mark.parametrize(("given", "expected"), [
    ((1, 128, 128), Recipe.R1D2D), ((1, 1, 128), Recipe.R1D1D), ("1D2D", Recipe.R1D2D),
    ("1d1d", Recipe.R1D1D), (Recipe.R1D2D, Recipe.R1D2D), ("UE8M0", Recipe.UE8M0)])
def test_explicit_recipe_spellings(given: Any, expected: Recipe) -> None:
    kw = _fp8(expected.value)
    assert dense_call(**kw, recipe=given).spec.recipe == expected


def test_explicit_recipe_overrides_inference(quiet: Any) -> None:
    """N = 1: a [1, KB] b_scale fits 1d2d and 1d1d; inference says 1d2d, recipe= says 1d1d."""
    kw = _fp8("1d1d", n=1)
    assert dense_call(**kw).spec.recipe == Recipe.R1D2D
    assert dense_call(**kw, recipe="1d1d").spec.recipe == Recipe.R1D1D
    a = dgreg.gemm(**kw, out_dtype=FP32)
    b = dgreg.gemm(**kw, recipe="1d1d", out_dtype=FP32)
    assert torch.equal(a, b)  # one row: both readings scale it the same way


def test_recipe_inference_reads_b_scale_rows(quiet: Any) -> None:
    """1d2d and 1d1d differ in B's scale rows and give different results."""
    kw2 = _fp8("1d2d")
    kw1 = dict(kw2, b_scale=kw2["b_scale"].repeat_interleave(128, dim=0)[:N].contiguous())
    assert dense_call(**kw1).spec.recipe == Recipe.R1D1D
    torch.testing.assert_close(dgreg.gemm(**kw1, out_dtype=FP32),
                               dgreg.gemm(**kw2, out_dtype=FP32), rtol=1e-6, atol=1e-3)
    kw1["b_scale"][5] *= 2  # per-row scales really are per row
    assert not torch.allclose(dgreg.gemm(**kw1, out_dtype=FP32)[:, 5],
                              dgreg.gemm(**kw2, out_dtype=FP32)[:, 5])


def test_recipe_inferred_for_grouped(quiet: Any) -> None:
    from dgreg.call import k_grouped_call, m_contiguous_call, m_masked_call

    a, b = operand((256, 256), FP8), operand((2, 160, 256), FP8, 1)
    gl = i32([0] * 128 + [1] * 128)
    assert m_contiguous_call(a, b, grouped_layout=gl, a_scale=scales(256, 2, seed=1),
                             b_scale=scales(2, 2, 2, seed=1)).spec.recipe == Recipe.R1D2D
    assert m_contiguous_call(a, b, grouped_layout=gl, a_scale=scales(256, 2, seed=1),
                             b_scale=scales(2, 160, 2, seed=1)).spec.recipe == Recipe.R1D1D
    assert m_masked_call(operand((2, 8, 256), FP8), b, masked_m=i32([1, 2]),
                         a_scale=scales(2, 8, 2, seed=1),
                         b_scale=scales(2, 2, 2, seed=1)).spec.recipe == Recipe.R1D2D
    words = torch.full((1, 16), 0x7F7F7F7F, dtype=torch.int32)
    assert k_grouped_call(operand((512, 16), FP8), operand((512, 32), FP8), ks=[512], a_scale=words,
                          b_scale=torch.full((1, 32), 0x7F7F7F7F, dtype=torch.int32)
                          ).spec.recipe == Recipe.UE8M0
    assert k_grouped_call(operand((256, 16), FP8), operand((256, 32), FP8), ks=[128, 128],
                          a_scale=scales(2, 16, seed=1),
                          b_scale=scales(2, 32, seed=1)).spec.recipe == Recipe.R1D1D


# -- pins, fallback warning, strict mode ----------------------------------------------------------

def _bf16_call(m: int = 8, n: int = 16) -> dict[str, Any]:
    return {"a": operand((m, 32), BF16), "b": operand((n, 32), BF16, 1)}


def test_plugin_pin_to_reference_does_not_warn() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = dgreg.gemm(**_bf16_call(), plugin="reference")
        dgreg.m_grouped_gemm_masked(operand((1, 4, 32), BF16), operand((1, 16, 32), BF16),
                                    masked_m=i32([2]), plugin="reference")
    assert out.shape == (8, 16)
    assert not [w for w in caught if issubclass(w.category, FallbackWarning)]


def test_use_context_pin_to_reference_does_not_warn() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with dgreg.use("reference"):
            dgreg.gemm(**_bf16_call())
    assert not [w for w in caught if issubclass(w.category, FallbackWarning)]


def test_pin_to_reference_is_allowed_in_strict_mode() -> None:
    with config.scope(DGREG_STRICT=True):
        out = dgreg.gemm(**_bf16_call(), plugin="reference")
        with dgreg.use("reference"):
            dgreg.gemm(**_bf16_call())
    assert out.shape == (8, 16)


def test_force_plugin_setting_pins() -> None:
    with config.scope(DGREG_FORCE_PLUGIN="reference"), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dgreg.gemm(**_bf16_call())
    assert not [w for w in caught if issubclass(w.category, FallbackWarning)]


def test_fallback_warning_once_per_spec_and_device() -> None:
    with pytest.warns(FallbackWarning, match="torch reference") as first:
        dgreg.gemm(**_bf16_call())
    assert len([w for w in first if issubclass(w.category, FallbackWarning)]) == 1
    message = str(next(w for w in first if issubclass(w.category, FallbackWarning)).message)
    assert "bf16_gemm" in message and "DGREG_STRICT" in message
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dgreg.gemm(**_bf16_call())  # same spec, same shape
        dgreg.gemm(**_bf16_call(m=24, n=40))  # same spec, another shape
        dgreg.gemm(**_bf16_call(), d=torch.empty(8, 16, dtype=BF16))
    assert not [w for w in caught if issubclass(w.category, FallbackWarning)]
    # another spec (fp32 D, accumulation, another grouping) warns once more each
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dgreg.gemm(**_bf16_call(), out_dtype=FP32)
        dgreg.gemm(**_bf16_call(), out_dtype=FP32)
        dgreg.gemm(**_bf16_call(), c=torch.zeros(8, 16))
        dgreg.m_grouped_gemm_masked(operand((1, 4, 32), BF16), operand((1, 16, 32), BF16),
                                    masked_m=i32([2]))
        dgreg.m_grouped_gemm_masked(operand((1, 4, 32), BF16), operand((1, 16, 32), BF16),
                                    masked_m=i32([4]))
    fallbacks = [str(w.message) for w in caught if issubclass(w.category, FallbackWarning)]
    assert len(fallbacks) == 3, fallbacks


def test_strict_turns_fallback_into_no_kernel_error() -> None:
    kw = _bf16_call()
    call = dense_call(**kw)
    with config.scope(DGREG_STRICT=True), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(NoKernelError) as info:
            dgreg.gemm(**kw)
    assert not [w for w in caught if issubclass(w.category, FallbackWarning)]
    text = str(info.value)
    assert "DGREG_STRICT" in text
    explained = str(dgreg.explain(call.spec, call.problem, device="cpu", file=None))
    assert explained in text, "the error must embed the explain text"
    assert "reference.torch" in text and call.spec.name in text
    assert str(info.value.explanation) in text


@pytest.mark.parametrize("name", ["gemm", "m_contiguous", "m_masked", "k_grouped"])
def test_strict_applies_to_every_function(name: str) -> None:
    func, kw, _ = _grouped_calls()[name]
    with config.scope(DGREG_STRICT=True), pytest.raises(NoKernelError):
        func(**kw)


def test_strict_after_a_warm_call() -> None:
    """A shape already run (and cached) still honours DGREG_STRICT when it is switched on."""
    kw = _bf16_call()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FallbackWarning)
        dgreg.gemm(**kw)
        dgreg.gemm(**kw)
    with config.scope(DGREG_STRICT=True), pytest.raises(NoKernelError):
        dgreg.gemm(**kw)


@pytest.mark.parametrize("name", ["gemm", "m_contiguous", "m_masked", "k_grouped"])
def test_use_unknown_plugin_raises(name: str) -> None:
    func, kw, _ = _grouped_calls()[name]
    with dgreg.use(plugin="nope"), pytest.raises(NoKernelError) as info:
        func(**kw)
    assert "'nope'" in str(info.value)
    assert "known plugins" in str(info.value) and "reference" in str(info.value)


def test_use_unknown_plugin_after_a_warm_call(quiet: Any) -> None:
    kw = _bf16_call()
    dgreg.gemm(**kw)
    with dgreg.use(plugin="nope"), pytest.raises(NoKernelError, match="known plugins"):
        dgreg.gemm(**kw)
    with pytest.raises(NoKernelError, match="known plugins"):
        dgreg.gemm(**kw, plugin="nope")


def test_use_restores_previous_pin(quiet: Any) -> None:
    kw = _bf16_call()
    with dgreg.use("nope"):
        with dgreg.use(None):
            dgreg.gemm(**kw)
        with pytest.raises(NoKernelError):
            dgreg.gemm(**kw)
    dgreg.gemm(**kw)


# -- the package namespace ---------------------------------------------------------------------

def test_every_public_name_resolves() -> None:
    for name in dgreg.__all__:
        assert getattr(dgreg, name) is not None, name
    assert len(set(dgreg.__all__)) == len(dgreg.__all__), "duplicates in __all__"
    assert set(dgreg.__all__) <= set(dir(dgreg))


def test_public_functions_are_the_api_functions() -> None:
    from dgreg import api

    for name in api.__all__:
        assert getattr(dgreg, name) is getattr(api, name)
    from dgreg import compat

    for name in compat.__all__:
        assert name in dgreg.__all__, name
        assert getattr(dgreg, name) is getattr(compat, name)


def test_unknown_attribute_is_attribute_error() -> None:
    with pytest.raises(AttributeError):
        dgreg.no_such_name  # noqa: B018



def test_fallback_warning_once_per_device() -> None:
    """The same spec on another (simulated) device warns once more, then stays quiet."""
    kw = _bf16_call()
    with pytest.warns(FallbackWarning):
        dgreg.gemm(**kw)
    with config.scope(DGREG_ARCH="sm90a"), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dgreg.gemm(**kw)
        dgreg.gemm(**kw)
    fallbacks = [str(w.message) for w in caught if issubclass(w.category, FallbackWarning)]
    assert len(fallbacks) == 1 and "sm90a" in fallbacks[0], fallbacks
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dgreg.gemm(**kw)
    assert not [w for w in caught if issubclass(w.category, FallbackWarning)]


@pytest.fixture
def kept_arguments(monkeypatch) -> Any:
    """(seen, made): every plan gets a pointer launcher that records the data pointers of each
    repeat (``seen``) and builds a call only for pointers it has not kept yet (``made``),
    then runs the kept call on the reference kernels. The fast path's entries are dropped
    before and after."""
    from dgreg import api, dispatch, reference

    plan = dispatch._plan
    seen, made = [], []

    def with_reuse(call, plugin):
        resolution, runner, _ = plan(call, plugin)
        kept = {}

        def launch_at(pointers, make_call):
            seen.append(pointers)
            if pointers not in kept:
                kept[pointers] = make_call()
                made.append(pointers)
            reference.run(kept[pointers])

        return resolution, runner, lambda first: launch_at

    monkeypatch.setattr(dispatch, "_plan", with_reuse)
    api._FAST.clear()
    yield seen, made
    api._FAST.clear()


def test_gemm_repeats_through_the_kept_arguments_at_pointers_seen_before(quiet, kept_arguments):
    """Where the plan's plugin marks its arguments reusable, a repeat of a gemm call hands the
    launcher its tensors' data pointers and builds a call only for pointers it has not seen;
    an allocated D, a C and a misaligned tensor take their own ways."""
    from dgreg.errors import InvalidArgumentError

    seen, made = kept_arguments
    a, b = operand((M, 64), BF16), operand((N, 64), BF16, 1)
    want = a.double() @ b.double().T
    d = torch.empty(M, N, dtype=BF16)
    for _ in range(3):
        d.fill_(float("nan"))
        assert dgreg.gemm(a, b, d) is d
        assert dgreg.calc_diff(d, want) < 1e-5
    assert seen == [(a.data_ptr(), b.data_ptr(), d.data_ptr(), 0, 0, 0)] * 2 and len(made) == 1
    other = operand((M, 64), BF16, 7)
    d.fill_(float("nan"))
    dgreg.gemm(other, b, d)  # new pointers: a call is made
    assert len(made) == 2 and dgreg.calc_diff(d, other.double() @ b.double().T) < 1e-5
    fresh = [dgreg.gemm(a, b) for _ in range(3)]  # D allocated by the call
    for out in fresh:
        assert out.shape == (M, N) and out.dtype == BF16 and dgreg.calc_diff(out, want) < 1e-5
    c = operand((M, N), FP32, 3)
    for _ in range(2):
        out = dgreg.gemm(a, b, c=c)
        assert dgreg.calc_diff(out, want + c.double()) < 1e-5
    assert seen[-1][3] == c.data_ptr()
    before = len(seen)
    shifted = torch.empty(M * N + 8, dtype=BF16)[1:M * N + 1].view(M, N)  # 2 bytes off
    with pytest.raises(InvalidArgumentError, match="'d'"):
        dgreg.gemm(a, b, shifted)
    assert len(seen) == before  # the misaligned call never reached the launcher


def test_grouped_calls_repeat_through_the_kept_arguments(quiet, kept_arguments):
    """M-grouped calls take the same kept-argument route as gemm: the launcher gets the six
    data pointers, the grouping tensor's among them (masked_m or the row ids: new counts
    at a new address are a new argument array), and the grouping tensor needs no 16-byte
    alignment."""
    seen, made = kept_arguments
    groups, m_max = 3, 16
    a = torch.stack([operand((m_max, K), BF16, g) for g in range(groups)])
    b = torch.stack([operand((N, K), BF16, 10 + g) for g in range(groups)])
    want = a.double() @ b.double().transpose(1, 2)
    counts = i32([16, 0, 5, 9])[1:]  # 4 bytes past an aligned address
    d = torch.empty(groups, m_max, N, dtype=BF16)
    for _ in range(3):
        d.fill_(float("nan"))
        assert dgreg.m_grouped_gemm_masked(a, b, d, masked_m=counts, expected_m=8) is d
        for g, rows in enumerate([0, 5, 9]):
            assert d[g, rows:].isnan().all()
            assert dgreg.calc_diff(d[g, :rows], want[g, :rows]) < 1e-5 if rows else True
    pointers = (a.data_ptr(), b.data_ptr(), d.data_ptr(), counts.data_ptr(), 0, 0)
    assert seen == [pointers] * 2 and made == [pointers]
    fresh = dgreg.m_grouped_gemm_masked(a, b, masked_m=counts, expected_m=8)  # D allocated:
    again = dgreg.m_grouped_gemm_masked(a, b, masked_m=counts, expected_m=8)  # zeros past counts
    for out in (fresh, again):
        assert (out[0] == 0).all() and (out[1, 5:] == 0).all()
        assert dgreg.calc_diff(out[2, :9], want[2, :9]) < 1e-5
    ids = i32([0] * 128 + [-1] * 128 + [1] * 128)  # experts on 128-row blocks
    flat_a = operand((384, K), BF16, 20)
    out = torch.full((384, N), float("nan"), dtype=BF16)
    before = len(seen)
    for _ in range(3):  # the first call plans and packs; the repeats reach the launcher
        dgreg.m_grouped_gemm_contiguous(flat_a, b[:2], out, grouped_layout=ids)
    assert seen[before:] == [(flat_a.data_ptr(), b.data_ptr(), out.data_ptr(),
                              ids.data_ptr(), 0, 0)] * 2
    assert out[128:256].isnan().all()  # padding rows untouched
    for rows, g in ((slice(0, 128), 0), (slice(256, 384), 1)):
        assert dgreg.calc_diff(out[rows], flat_a[rows].double() @ b[g].double().T) < 1e-5
