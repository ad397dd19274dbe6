"""dgreg's operations as torch custom ops (``torch.ops.dgreg.*``), for ``torch.compile``.

Registered with the low-level ``torch.library.Library`` API plus ``register_fake`` (the
``custom_op`` decorator costs several microseconds per call). The ops write into ``d``
(``Tensor(a!)``) and return nothing; a ``c`` that is ``d`` itself is passed as
``accumulate=True`` because a mutated input may not alias another input. Eager calls of the
public API do not go through these ops (it would only add dispatch overhead); code being
compiled does, so the compiler sees an opaque, correctly-typed op.
"""

from __future__ import annotations

from typing import Any

import torch

from dgreg import api
from dgreg.spec import Recipe

__all__ = ["LIB", "call_op"]

LIB = torch.library.Library("dgreg", "DEF")
_SCALES = "Tensor? a_scale, Tensor? b_scale, str? recipe"
LIB.define(f"gemm_(Tensor a, Tensor b, Tensor(a!) d, Tensor? c, bool accumulate, {_SCALES}, "
           f"str layout) -> ()")
LIB.define(f"m_grouped_gemm_contiguous_(Tensor a, Tensor b, Tensor(a!) d, Tensor grouped_layout, "
           f"{_SCALES}, str layout, bool use_psum_layout, int? expected_m) -> ()")
LIB.define(f"m_grouped_gemm_masked_(Tensor a, Tensor b, Tensor(a!) d, Tensor masked_m, "
           f"{_SCALES}, int? expected_m) -> ()")
LIB.define(f"k_grouped_gemm_contiguous_(Tensor a, Tensor b, Tensor(a!) d, Tensor? c, "
           f"bool accumulate, {_SCALES}, int[] ks, Tensor? ks_tensor) -> ()")


def _gemm(a, b, d, c, accumulate, a_scale, b_scale, recipe, layout):
    api.gemm(a, b, d, c=d if accumulate else c, a_scale=a_scale, b_scale=b_scale,
             layout=layout, recipe=recipe)


def _m_contiguous(a, b, d, grouped_layout, a_scale, b_scale, recipe, layout, use_psum_layout,
                  expected_m):
    api.m_grouped_gemm_contiguous(a, b, d, grouped_layout=grouped_layout, a_scale=a_scale,
                                  b_scale=b_scale, layout=layout, recipe=recipe,
                                  use_psum_layout=use_psum_layout, expected_m=expected_m)


def _m_masked(a, b, d, masked_m, a_scale, b_scale, recipe, expected_m):
    api.m_grouped_gemm_masked(a, b, d, masked_m=masked_m, expected_m=expected_m,
                              a_scale=a_scale, b_scale=b_scale, recipe=recipe)


def _k_grouped(a, b, d, c, accumulate, a_scale, b_scale, recipe, ks, ks_tensor):
    api.k_grouped_gemm_contiguous(a, b, d, ks=list(ks), ks_tensor=ks_tensor,
                                  c=d if accumulate else c, a_scale=a_scale, b_scale=b_scale,
                                  recipe=recipe)


_IMPLS = {"gemm_": _gemm, "m_grouped_gemm_contiguous_": _m_contiguous,
          "m_grouped_gemm_masked_": _m_masked, "k_grouped_gemm_contiguous_": _k_grouped}


def _fake(*args: Any, **kwargs: Any) -> None:
    return None  # every op writes into d and returns nothing


for _name, _impl in _IMPLS.items():
    LIB.impl(_name, _impl, "CompositeExplicitAutograd")
    torch.library.register_fake(f"dgreg::{_name}", _fake, lib=LIB)


def _recipe_text(recipe: Any) -> str | None:
    return None if recipe is None else Recipe.parse(recipe).value


def call_op(name: str, a: Any, b: Any, d: Any, **kw: Any) -> Any:
    """Route a public-API call through ``torch.ops.dgreg`` (used while compiling)."""
    recipe = _recipe_text(kw.pop("recipe", None))
    if d is None:
        raise TypeError(f"dgreg.{name} needs an explicit 'd' inside torch.compile "
                        f"(allocate the output before the call)")
    c = kw.pop("c", None)
    accumulate = c is d
    if name == "gemm":
        torch.ops.dgreg.gemm_(a, b, d, None if accumulate else c, accumulate, kw["a_scale"],
                              kw["b_scale"], recipe, str(kw["layout"]))
    elif name == "m_grouped_gemm_contiguous":
        torch.ops.dgreg.m_grouped_gemm_contiguous_(
            a, b, d, kw["grouped_layout"], kw["a_scale"], kw["b_scale"], recipe,
            str(kw["layout"]), kw["use_psum_layout"], kw["expected_m"])
    elif name == "m_grouped_gemm_masked":
        torch.ops.dgreg.m_grouped_gemm_masked_(a, b, d, kw["masked_m"], kw["a_scale"],
                                               kw["b_scale"], recipe, kw["expected_m"])
    else:
        torch.ops.dgreg.k_grouped_gemm_contiguous_(
            a, b, d, None if accumulate else c, accumulate, kw["a_scale"], kw["b_scale"], recipe,
            list(kw["ks"]), kw["ks_tensor"])
    return d
