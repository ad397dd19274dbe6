"""DeepGEMM-compatible names, with DeepGEMM's argument conventions.

FP8 operands are ``(tensor, scales)`` pairs; ``d`` is required; the layout suffix says how
``a`` and ``b`` are passed (see :func:`dgreg.gemm`). Arguments that only steer DeepGEMM's
own compilation (``compiled_dims``, ``disable_ue8m0_cast``, ``ensure_zero_padding``) are
accepted and type-checked, and do not change results: dgreg picks compile-time dimensions
itself and never converts FP32 scales to UE8M0 implicitly (that conversion is lossy; use
``dgreg.get_mn_major_tma_aligned_packed_ue8m0_tensor`` explicitly).
"""

from __future__ import annotations

from typing import Any

import torch

from dgreg import api
from dgreg.errors import InvalidArgumentError
from dgreg.spec import Recipe

_LAYOUTS = ("nt", "nn", "tn", "tt")


def _pair(name: str, x: Any) -> tuple[torch.Tensor, torch.Tensor]:
    if not (isinstance(x, (tuple, list)) and len(x) == 2):
        kind = type(x).__name__ if not isinstance(x, torch.Tensor) else "a bare tensor"
        raise InvalidArgumentError(name, "a (tensor, scale_factors) pair for FP8 GEMMs", kind)
    _dtype_of(name, x[0], torch.float8_e4m3fn)
    return x[0], x[1]


def _dtype_of(name: str, x: Any, dtype: torch.dtype) -> None:
    if isinstance(x, torch.Tensor) and x.dtype != dtype:
        raise InvalidArgumentError(name, f"a {str(dtype).removeprefix('torch.')} tensor for this "
                                         f"function", f"{str(x.dtype).removeprefix('torch.')}")


def _bf16(a: Any, b: Any) -> None:
    _dtype_of("a", a, torch.bfloat16)
    _dtype_of("b", b, torch.bfloat16)


def _packed(recipe: Any, a_sf: Any) -> Any:
    """DeepGEMM's recipe tuples give granularity; int32 scales mean the UE8M0 format."""
    if recipe is not None and isinstance(a_sf, torch.Tensor) and a_sf.dtype == torch.int32:
        try:
            if Recipe.parse(recipe) == Recipe.R1D1D:
                return Recipe.UE8M0
        except ValueError:
            pass
    return recipe


def _recipe(recipe: Any, recipe_a: Any, recipe_b: Any) -> Any:
    if recipe is not None and (recipe_a is not None or recipe_b is not None):
        raise InvalidArgumentError("recipe", "None when recipe_a/recipe_b are given",
                                   repr(recipe))
    if recipe_a is None and recipe_b is None:
        return recipe
    table = {((1, 128), (128, 128)): Recipe.R1D2D, ((1, 128), (1, 128)): Recipe.R1D1D}
    for name, value in (("recipe_a", recipe_a), ("recipe_b", recipe_b)):
        if value is not None and not (isinstance(value, (tuple, list)) and len(value) == 2
                                      and all(isinstance(v, int) for v in value)):
            raise InvalidArgumentError(name, "a (granularity_mn, granularity_k) pair of ints",
                                       repr(value))
    key = (tuple(recipe_a or (1, 128)), tuple(recipe_b or (128, 128)))
    if key not in table:
        raise InvalidArgumentError("recipe_b", "(128, 128) or (1, 128) with recipe_a (1, 128)",
                                   f"recipe_a={recipe_a!r}, recipe_b={recipe_b!r}")
    return table[key]


def _knobs(compiled_dims: Any = None, **flags: Any) -> None:
    if compiled_dims is not None and not (isinstance(compiled_dims, str)
                                          and set(compiled_dims) <= set("mnk")):
        raise InvalidArgumentError("compiled_dims", "a string of the letters m, n, k",
                                   repr(compiled_dims))
    for name, value in flags.items():
        if not isinstance(value, bool):
            raise InvalidArgumentError(name, "a bool", repr(value))


def _fp8_dense(layout: str):
    def fn(a: Any, b: Any, d: torch.Tensor, c: torch.Tensor | None = None, recipe: Any = None,
           recipe_a: Any = None, recipe_b: Any = None, compiled_dims: str | None = None,
           disable_ue8m0_cast: bool = False) -> torch.Tensor:
        _knobs(compiled_dims, disable_ue8m0_cast=disable_ue8m0_cast)
        a_t, a_sf = _pair("a", a)
        b_t, b_sf = _pair("b", b)
        _require_d(d)
        return api.gemm(a_t, b_t, d, c=c, a_scale=a_sf, b_scale=b_sf, layout=layout.upper(),
                        recipe=_packed(_recipe(recipe, recipe_a, recipe_b), a_sf))

    fn.__name__ = fn.__qualname__ = f"fp8_gemm_{layout}"
    fn.__doc__ = (f"DeepGEMM's ``fp8_gemm_{layout}``: ``d = c + op(a) @ op(b)`` with "
                  f"``a``/``b`` as ``(tensor, scales)`` pairs; see :func:`dgreg.gemm`.")
    return fn


def _bf16_dense(layout: str):
    def fn(a: torch.Tensor, b: torch.Tensor, d: torch.Tensor, c: torch.Tensor | None = None,
           compiled_dims: str | None = None) -> torch.Tensor:
        _knobs(compiled_dims)
        _bf16(a, b)
        _require_d(d)
        return api.gemm(a, b, d, c=c, layout=layout.upper())

    fn.__name__ = fn.__qualname__ = f"bf16_gemm_{layout}"
    fn.__doc__ = f"DeepGEMM's ``bf16_gemm_{layout}``: ``d = c + op(a) @ op(b)``; see :func:`dgreg.gemm`."
    return fn


def _require_d(d: Any) -> None:
    if not isinstance(d, torch.Tensor):
        raise InvalidArgumentError("d", "the output tensor (DeepGEMM-style calls write into d)",
                                   type(d).__name__)


fp8_gemm_nt, fp8_gemm_nn, fp8_gemm_tn, fp8_gemm_tt = (_fp8_dense(x) for x in _LAYOUTS)
bf16_gemm_nt, bf16_gemm_nn, bf16_gemm_tn, bf16_gemm_tt = (_bf16_dense(x) for x in _LAYOUTS)


def _fp8_m_contiguous(layout: str):
    def fn(a: Any, b: Any, d: torch.Tensor, grouped_layout: torch.Tensor, recipe: Any = None,
           recipe_a: Any = None, recipe_b: Any = None, compiled_dims: str | None = None,
           disable_ue8m0_cast: bool = False, use_psum_layout: bool = False,
           ensure_zero_padding: bool = True,
           expected_m_for_psum_layout: int | None = None) -> torch.Tensor:
        _knobs(compiled_dims, disable_ue8m0_cast=disable_ue8m0_cast,
               ensure_zero_padding=ensure_zero_padding)
        a_t, a_sf = _pair("a", a)
        b_t, b_sf = _pair("b", b)
        _require_d(d)
        return api.m_grouped_gemm_contiguous(
            a_t, b_t, d, grouped_layout=grouped_layout, a_scale=a_sf, b_scale=b_sf,
            layout=layout.upper(), use_psum_layout=use_psum_layout,
            expected_m=expected_m_for_psum_layout,
            recipe=_packed(_recipe(recipe, recipe_a, recipe_b), a_sf))

    fn.__name__ = fn.__qualname__ = f"m_grouped_fp8_gemm_{layout}_contiguous"
    fn.__doc__ = "DeepGEMM's contiguous M-grouped FP8 GEMM; see :func:`dgreg.m_grouped_gemm_contiguous`."
    return fn


def _bf16_m_contiguous(layout: str):
    def fn(a: torch.Tensor, b: torch.Tensor, d: torch.Tensor, grouped_layout: torch.Tensor,
           compiled_dims: str | None = None, use_psum_layout: bool = False,
           ensure_zero_padding: bool = True,
           expected_m_for_psum_layout: int | None = None) -> torch.Tensor:
        _knobs(compiled_dims, ensure_zero_padding=ensure_zero_padding)
        _bf16(a, b)
        _require_d(d)
        return api.m_grouped_gemm_contiguous(
            a, b, d, grouped_layout=grouped_layout, layout=layout.upper(),
            use_psum_layout=use_psum_layout, expected_m=expected_m_for_psum_layout)

    fn.__name__ = fn.__qualname__ = f"m_grouped_bf16_gemm_{layout}_contiguous"
    fn.__doc__ = "DeepGEMM's contiguous M-grouped BF16 GEMM; see :func:`dgreg.m_grouped_gemm_contiguous`."
    return fn


m_grouped_fp8_gemm_nt_contiguous = _fp8_m_contiguous("nt")
m_grouped_fp8_gemm_nn_contiguous = _fp8_m_contiguous("nn")
m_grouped_bf16_gemm_nt_contiguous = _bf16_m_contiguous("nt")
m_grouped_bf16_gemm_nn_contiguous = _bf16_m_contiguous("nn")


def m_grouped_fp8_gemm_nt_masked(a: Any, b: Any, d: torch.Tensor, masked_m: torch.Tensor,
                                 expected_m: int, recipe: Any = None, recipe_a: Any = None,
                                 recipe_b: Any = None, compiled_dims: str | None = None,
                                 disable_ue8m0_cast: bool = False) -> torch.Tensor:
    """DeepGEMM's masked M-grouped FP8 GEMM; see :func:`dgreg.m_grouped_gemm_masked`."""
    _knobs(compiled_dims, disable_ue8m0_cast=disable_ue8m0_cast)
    a_t, a_sf = _pair("a", a)
    b_t, b_sf = _pair("b", b)
    _require_d(d)
    return api.m_grouped_gemm_masked(a_t, b_t, d, masked_m=masked_m, expected_m=expected_m,
                                     a_scale=a_sf, b_scale=b_sf,
                                     recipe=_packed(_recipe(recipe, recipe_a, recipe_b), a_sf))


def m_grouped_bf16_gemm_nt_masked(a: torch.Tensor, b: torch.Tensor, d: torch.Tensor,
                                  masked_m: torch.Tensor, expected_m: int,
                                  compiled_dims: str | None = None) -> torch.Tensor:
    """DeepGEMM's masked M-grouped BF16 GEMM; see :func:`dgreg.m_grouped_gemm_masked`."""
    _knobs(compiled_dims)
    _bf16(a, b)
    _require_d(d)
    return api.m_grouped_gemm_masked(a, b, d, masked_m=masked_m, expected_m=expected_m)


def _no_psum(use_psum_layout: Any) -> None:
    if use_psum_layout is not False:
        raise InvalidArgumentError("use_psum_layout",
                                   "False (K-grouped GEMMs take per-group sizes, not prefix sums)",
                                   repr(use_psum_layout))


def k_grouped_fp8_gemm_tn_contiguous(a: Any, b: Any, d: torch.Tensor, ks_cpu: list[int],
                                     grouped_layout: torch.Tensor | None = None,
                                     c: torch.Tensor | None = None, recipe: Any = (1, 1, 128),
                                     compiled_dims: str | None = None,
                                     use_psum_layout: bool = False) -> torch.Tensor:
    """DeepGEMM's K-grouped FP8 weight-gradient GEMM; see :func:`dgreg.k_grouped_gemm_contiguous`."""
    _knobs(compiled_dims)
    _no_psum(use_psum_layout)
    a_t, a_sf = _pair("a", a)
    b_t, b_sf = _pair("b", b)
    _require_d(d)
    return api.k_grouped_gemm_contiguous(a_t, b_t, d, ks=ks_cpu, ks_tensor=grouped_layout, c=c,
                                         a_scale=a_sf, b_scale=b_sf, recipe=_packed(recipe, a_sf))


def k_grouped_bf16_gemm_tn_contiguous(a: torch.Tensor, b: torch.Tensor, d: torch.Tensor,
                                      ks_cpu: list[int], grouped_layout: torch.Tensor | None = None,
                                      c: torch.Tensor | None = None,
                                      compiled_dims: str | None = None,
                                      use_psum_layout: bool = False) -> torch.Tensor:
    """DeepGEMM's K-grouped BF16 weight-gradient GEMM; see :func:`dgreg.k_grouped_gemm_contiguous`."""
    _knobs(compiled_dims)
    _no_psum(use_psum_layout)
    _bf16(a, b)
    _require_d(d)
    return api.k_grouped_gemm_contiguous(a, b, d, ks=ks_cpu, ks_tensor=grouped_layout, c=c)


# -- names older DeepGEMM releases used, still called by downstream code ------------------------

def gemm_fp8_fp8_bf16_nt(lhs: Any, rhs: Any, out: torch.Tensor) -> torch.Tensor:
    """DeepGEMM v1's dense FP8 GEMM (1d2d scales, BF16 out): same as ``fp8_gemm_nt``."""
    return fp8_gemm_nt(lhs, rhs, out)


def m_grouped_gemm_fp8_fp8_bf16_nt_contiguous(lhs: Any, rhs: Any, out: torch.Tensor,
                                              m_indices: torch.Tensor) -> torch.Tensor:
    """DeepGEMM v1's contiguous grouped GEMM (``m_indices`` = per-row group ids)."""
    return m_grouped_fp8_gemm_nt_contiguous(lhs, rhs, out, m_indices)


def m_grouped_gemm_fp8_fp8_bf16_nt_masked(lhs: Any, rhs: Any, out: torch.Tensor,
                                          masked_m: torch.Tensor, expected_m: int) -> torch.Tensor:
    """DeepGEMM v1's masked grouped GEMM."""
    return m_grouped_fp8_gemm_nt_masked(lhs, rhs, out, masked_m, expected_m)


fp8_m_grouped_gemm_nt_masked = m_grouped_fp8_gemm_nt_masked
bf16_m_grouped_gemm_nt_masked = m_grouped_bf16_gemm_nt_masked

__all__ = [
    "bf16_gemm_nn", "bf16_gemm_nt", "bf16_gemm_tn", "bf16_gemm_tt",
    "bf16_m_grouped_gemm_nt_masked",
    "fp8_gemm_nn", "fp8_gemm_nt", "fp8_gemm_tn", "fp8_gemm_tt",
    "fp8_m_grouped_gemm_nt_masked",
    "gemm_fp8_fp8_bf16_nt",
    "k_grouped_bf16_gemm_tn_contiguous", "k_grouped_fp8_gemm_tn_contiguous",
    "m_grouped_bf16_gemm_nn_contiguous", "m_grouped_bf16_gemm_nt_contiguous",
    "m_grouped_bf16_gemm_nt_masked",
    "m_grouped_fp8_gemm_nn_contiguous", "m_grouped_fp8_gemm_nt_contiguous",
    "m_grouped_fp8_gemm_nt_masked",
    "m_grouped_gemm_fp8_fp8_bf16_nt_contiguous", "m_grouped_gemm_fp8_fp8_bf16_nt_masked",
]
