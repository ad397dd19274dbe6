"""The generic public API: one function per grouping, dtypes and recipe read from the inputs.

Every function computes ``D = C + op(A) @ op(B)`` into ``d`` (allocated when ``None``) and
returns ``d``. FP8 operands take FP32 scale factors (``a_scale``, ``b_scale``) given in the
same orientation as their operand; the recipe (1d2d / 1d1d / ue8m0) is inferred from the
scales' shapes and dtype unless ``recipe=`` says it. ``plugin=`` pins the call to one plugin.
"""

from __future__ import annotations

from typing import Any

import torch

from dgreg import call as _call
from dgreg import dispatch, reference
from dgreg.call import GemmCall

__all__ = ["gemm", "k_grouped_gemm_contiguous", "m_grouped_gemm_contiguous", "m_grouped_gemm_masked"]


def _run(call: GemmCall, plugin: str | None) -> torch.Tensor:
    p = call.problem
    if p.m == 0 or p.n == 0:
        return call.d
    if p.k == 0:  # D = C (or 0) on the rows the op writes: no kernel needed
        reference.run(call)
        return call.d
    return dispatch.execute(call, plugin)


def gemm(a: torch.Tensor, b: torch.Tensor, d: torch.Tensor | None = None, *,
         c: torch.Tensor | None = None, a_scale: torch.Tensor | None = None,
         b_scale: torch.Tensor | None = None, layout: str = "NT",
         out_dtype: torch.dtype | None = None, recipe: Any = None,
         plugin: str | None = None) -> torch.Tensor:
    """``D = C + op(a) @ op(b)``, FP8 (with scales) or BF16, D in BF16 or FP32.

    ``layout`` says how a and b are passed (DeepGEMM's convention): first letter for ``a``
    (``N``: ``[M, K]``; ``T``: ``[K, M]``), second for ``b`` (``T``: ``[N, K]``; ``N``:
    ``[K, N]``). So the default ``"NT"`` computes ``a @ b.T``. Either major-ness is accepted
    for each operand (it is read from the strides); every non-unit stride must be a multiple
    of 16 bytes. Scales: ``a_scale`` ``[M, ceil(K/128)]`` float32; ``b_scale``
    ``[ceil(N/128), ceil(K/128)]`` (1d2d) or ``[N, ceil(K/128)]`` (1d1d), transposed likewise
    when their operand is passed transposed; int32 packed UE8M0 scales select the ue8m0 recipe.
    ``c`` (``[M, N]``, float32 or D's dtype, may be ``d`` itself) is added when given.
    """
    return _run(_call.dense_call(a, b, d, c=c, a_scale=a_scale, b_scale=b_scale, layout=layout,
                                 out_dtype=out_dtype, recipe=recipe), plugin)


def m_grouped_gemm_contiguous(a: torch.Tensor, b: torch.Tensor, d: torch.Tensor | None = None, *,
                              grouped_layout: torch.Tensor, a_scale: torch.Tensor | None = None,
                              b_scale: torch.Tensor | None = None, layout: str = "NT",
                              use_psum_layout: bool = False, expected_m: int | None = None,
                              out_dtype: torch.dtype | None = None, recipe: Any = None,
                              plugin: str | None = None) -> torch.Tensor:
    """MoE GEMM over experts' tokens stored back to back.

    ``a`` ``[M_sum, K]``, ``b`` ``[G, N, K]`` (``layout="NN"``: ``[G, K, N]``), ``d``
    ``[M_sum, N]``. ``grouped_layout`` (int32 on a's device) is either one group id per row
    of ``a``, -1 marking padding rows, with each group's rows starting at a multiple of
    ``get_mk_alignment_for_contiguous_layout()`` (128); or, with ``use_psum_layout=True``,
    ``[G]`` end offsets where group g starts at ``align(end[g-1], 128)``. Rows of no group
    are left untouched in ``d``. ``expected_m`` is a size hint for the heuristics.
    """
    return _run(_call.m_contiguous_call(
        a, b, d, grouped_layout=grouped_layout, a_scale=a_scale, b_scale=b_scale, layout=layout,
        use_psum_layout=use_psum_layout, expected_m=expected_m, out_dtype=out_dtype,
        recipe=recipe), plugin)


def m_grouped_gemm_masked(a: torch.Tensor, b: torch.Tensor, d: torch.Tensor | None = None, *,
                          masked_m: torch.Tensor, expected_m: int | None = None,
                          a_scale: torch.Tensor | None = None, b_scale: torch.Tensor | None = None,
                          out_dtype: torch.dtype | None = None, recipe: Any = None,
                          plugin: str | None = None) -> torch.Tensor:
    """MoE decode GEMM: ``a`` ``[G, M_max, K]``, ``b`` ``[G, N, K]``, ``d`` ``[G, M_max, N]``.

    Only the first ``masked_m[g]`` rows of group g are computed (``masked_m``: int32 ``[G]``
    on the device, so the call is CUDA-graph friendly); the other rows of ``d`` are left
    untouched. ``expected_m`` is the heuristics' guess of a typical ``masked_m``.
    """
    return _run(_call.m_masked_call(
        a, b, d, masked_m=masked_m, expected_m=expected_m, a_scale=a_scale, b_scale=b_scale,
        out_dtype=out_dtype, recipe=recipe), plugin)


def k_grouped_gemm_contiguous(a: torch.Tensor, b: torch.Tensor, d: torch.Tensor | None = None, *,
                              ks: list[int], ks_tensor: torch.Tensor | None = None,
                              c: torch.Tensor | None = None, a_scale: torch.Tensor | None = None,
                              b_scale: torch.Tensor | None = None, recipe: Any = None,
                              plugin: str | None = None) -> torch.Tensor:
    """MoE weight gradient: ``d[g] = c[g] + a_g.T @ b_g`` in float32.

    ``a`` ``[sum K, M]`` and ``b`` ``[sum K, N]`` are MN-major (row-major as passed), split
    along K into groups of ``ks`` rows (host ints; FP8 groups must be multiples of 128, 512
    for ue8m0). ``d`` and ``c`` are ``[G, M, N]`` float32. FP8 scales are per row x 128-K:
    ``a_scale`` ``[sum K / 128, M]``, ``b_scale`` ``[sum K / 128, N]``.
    """
    return _run(_call.k_grouped_call(a, b, d, ks=ks, ks_tensor=ks_tensor, c=c, a_scale=a_scale,
                                     b_scale=b_scale, recipe=recipe), plugin)
