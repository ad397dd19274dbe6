"""The generic public API: one function per grouping, dtypes and recipe read from the inputs.

Every function computes ``D = C + op(A) @ op(B)`` into ``d`` (allocated when ``None``) and
returns ``d``. FP8 operands take FP32 scale factors (``a_scale``, ``b_scale``) given in the
same orientation as their operand; the recipe (1d2d / 1d1d / ue8m0) is inferred from the
scales' shapes and dtype unless ``recipe=`` says it. ``plugin=`` pins the call to one plugin.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from dgreg import call as _call
from dgreg import dispatch, reference
from dgreg.call import GemmCall

__all__ = ["gemm", "k_grouped_gemm_contiguous", "m_grouped_gemm_contiguous", "m_grouped_gemm_masked"]

# The hot path. A call whose tensors have the metadata (dtype, shape, strides, device) of an
# earlier call, with the same options, reuses that call's validated spec and problem and its
# planned runner: no validation beyond pointer alignment, no hook, no file, no compile.
# Entries: (remake, runner, again), see ``_run``. Where the plugin marks the arguments
# reusable, ``again`` relaunches the argument array kept for data pointers seen before,
# without building a GemmCall or packing.
_FAST: dict[tuple[Any, ...], tuple[Callable[..., GemmCall], Any, Any]] = {}
dispatch.cache_listeners.append(_FAST.clear)
_compiling = torch.compiler.is_compiling


def _sig(t: Any) -> Any:
    if t is None:
        return None
    return (t.dtype, t.shape, t.stride(), t.device)  # AttributeError for non-tensors


def _exact(value: Any) -> Any:
    """A key part that tells 1 from True and 2 from 2.0 (they hash alike, validate apart)."""
    return (type(value), value)


def _aligned(*tensors: Any) -> bool:
    bits = 0
    for t in tensors:
        if t is not None:
            bits |= t.data_ptr()
    return not bits & 15


def _repeat(launch_at: Any, remake: Callable[..., GemmCall], new_d: Callable[[Any], Any],
            x_aligned: bool) -> Callable[..., Any]:
    """The fast path's call through a plan's pointer launcher, for the entries' argument order
    ``(a, b, d, x, a_scale, b_scale)``: x is C (``gemm``) or the grouping tensor. It returns
    D, or None (the slow path, which names the tensor) when a pointer is not 16-byte aligned;
    x's is checked only where ``x_aligned`` (a grouping tensor needs no alignment)."""

    def repeat(a, b, d, x, a_scale, b_scale):
        if d is None:
            d = new_d(a.device)
        pa, pb, pd = a.data_ptr(), b.data_ptr(), d.data_ptr()
        px = 0 if x is None else x.data_ptr()
        psa = 0 if a_scale is None else a_scale.data_ptr()
        psb = 0 if b_scale is None else b_scale.data_ptr()
        if (pa | pb | pd | psa | psb | (px if x_aligned else 0)) & 15:
            return None
        launch_at((pa, pb, pd, px, psa, psb), lambda: remake(a, b, d, x, a_scale, b_scale))
        return d

    return repeat


def _remade(remake: Callable[..., GemmCall], runner: Any, new_d: Callable[[Any], Any],
            x_aligned: bool) -> Callable[..., Any]:
    """The fast path's call where the plan keeps no arguments: the call rebuilt from the
    tensors (D allocated where the caller gives none) and run (packed and launched); None (the
    slow path) when a pointer is not 16-byte aligned (see :func:`_repeat`)."""

    def again(a, b, d, x, a_scale, b_scale):
        if not _aligned(a, b, d, x if x_aligned else None, a_scale, b_scale):
            return None
        if d is None:
            d = new_d(a.device)
        call = remake(a, b, d, x, a_scale, b_scale)
        runner(call)
        return call.d

    return again


def _run(call: GemmCall, plugin: str | None, key: Any = None,
         remake: Callable[..., GemmCall] | None = None,
         new_d: Callable[[Any], Any] | None = None, x_aligned: bool = False) -> torch.Tensor:
    """Plan and run ``call``; with a ``key`` and ``remake``, keep the fast path's entry
    ``(remake, runner, again)``. With ``new_d`` (which allocates D for calls without one),
    ``again(a, b, d, x, a_scale, b_scale)`` is :func:`_repeat` where the plan has a pointer
    launcher, else :func:`_remade`; both allocate D with ``new_d`` before ``remake`` sees it.
    Without ``new_d`` (``k_grouped_gemm_contiguous``, whose calls take more tensors), None."""
    p = call.problem
    if p.is_empty or p.k == 0:
        dispatch.check_pin(plugin)  # a bad pin is an error even when nothing needs a kernel
        if not p.is_empty:  # k == 0: D = C (or 0) on the rows the op writes
            reference.run(call)
        return call.d
    _, runner, reuse = dispatch._plan(call, plugin)
    runner(call)
    if key is not None and remake is not None:
        again = None
        if new_d is not None:
            launcher = reuse(call) if reuse is not None else None
            again = _remade(remake, runner, new_d, x_aligned) if launcher is None else \
                _repeat(launcher, remake, new_d, x_aligned)
        _FAST[key] = (remake, runner, again)
    return call.d


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
    if _compiling():
        from dgreg.ops import call_op

        return call_op("gemm", a, b, d, c=c, a_scale=a_scale, b_scale=b_scale, layout=layout,
                       recipe=recipe)
    try:
        key = ("gemm", _sig(a), _sig(b), _sig(d), c is d and c is not None, _sig(c),
               _sig(a_scale), _sig(b_scale), layout, out_dtype, recipe, plugin,
               dispatch._pin.get())
        fast = _FAST.get(key)
    except (AttributeError, TypeError):  # not tensors, or unhashable options: the slow path says why
        key = fast = None
    if fast is not None:
        out = fast[2](a, b, d, c, a_scale, b_scale)
        if out is not None:
            return out
    call = _call.dense_call(a, b, d, c=c, a_scale=a_scale, b_scale=b_scale, layout=layout,
                            out_dtype=out_dtype, recipe=recipe)
    spec, problem = call.spec, call.problem
    ta, tb = layout.upper()[0] == "T", layout.upper()[1] == "N"
    d_shape, d_dtype = tuple(call.d.shape), call.d.dtype

    def new_d(device):
        return torch.empty(d_shape, dtype=d_dtype, device=device)

    def remake(a, b, d, c, a_scale, b_scale):  # d: the caller's or a new one (see _run)
        if ta:
            a = a.t()
            a_scale = a_scale.t() if a_scale is not None else None
        if tb:
            b = b.t()
            b_scale = b_scale.t() if b_scale is not None else None
        return GemmCall(spec, problem, a, b, d, c, a_scale, b_scale)

    return _run(call, plugin, key, remake, new_d, x_aligned=True)


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
    if _compiling():
        from dgreg.ops import call_op

        return call_op("m_grouped_gemm_contiguous", a, b, d, grouped_layout=grouped_layout,
                       a_scale=a_scale, b_scale=b_scale, layout=layout,
                       use_psum_layout=use_psum_layout, expected_m=expected_m, recipe=recipe)
    try:
        key = ("m_contiguous", _sig(a), _sig(b), _sig(d), _sig(grouped_layout), _sig(a_scale),
               _sig(b_scale), layout, _exact(use_psum_layout), _exact(expected_m), out_dtype,
               recipe, plugin, dispatch._pin.get())
        fast = _FAST.get(key)
    except (AttributeError, TypeError):
        key = fast = None
    if fast is not None:
        out = fast[2](a, b, d, grouped_layout, a_scale, b_scale)
        if out is not None:
            return out
    call = _call.m_contiguous_call(
        a, b, d, grouped_layout=grouped_layout, a_scale=a_scale, b_scale=b_scale, layout=layout,
        use_psum_layout=use_psum_layout, expected_m=expected_m, out_dtype=out_dtype,
        recipe=recipe)
    spec, problem = call.spec, call.problem
    tb = layout.upper() == "NN"
    d_shape, d_dtype = tuple(call.d.shape), call.d.dtype

    def new_d(device):  # rows no group writes read as zeros, as on the first call
        return torch.zeros(d_shape, dtype=d_dtype, device=device)

    def remake(a, b, d, grouped_layout, a_scale, b_scale):  # d: given (see _run)
        if tb:
            b = b.transpose(1, 2)
            b_scale = b_scale.transpose(1, 2) if b_scale is not None else None
        return GemmCall(spec, problem, a, b, d, None, a_scale, b_scale, grouped_layout,
                        use_psum_layout)

    return _run(call, plugin, key, remake, new_d)


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
    if _compiling():
        from dgreg.ops import call_op

        return call_op("m_grouped_gemm_masked", a, b, d, masked_m=masked_m,
                       expected_m=expected_m, a_scale=a_scale, b_scale=b_scale, recipe=recipe)
    try:
        key = ("m_masked", _sig(a), _sig(b), _sig(d), _sig(masked_m), _sig(a_scale),
               _sig(b_scale), _exact(expected_m), out_dtype, recipe, plugin, dispatch._pin.get())
        fast = _FAST.get(key)
    except (AttributeError, TypeError):
        key = fast = None
    if fast is not None:
        out = fast[2](a, b, d, masked_m, a_scale, b_scale)
        if out is not None:
            return out
    call = _call.m_masked_call(a, b, d, masked_m=masked_m, expected_m=expected_m,
                               a_scale=a_scale, b_scale=b_scale, out_dtype=out_dtype,
                               recipe=recipe)
    spec, problem = call.spec, call.problem
    d_shape, d_dtype = tuple(call.d.shape), call.d.dtype

    def new_d(device):  # rows no group writes read as zeros, as on the first call
        return torch.zeros(d_shape, dtype=d_dtype, device=device)

    def remake(a, b, d, masked_m, a_scale, b_scale):  # d: given (see _run)
        return GemmCall(spec, problem, a, b, d, None, a_scale, b_scale, masked_m)

    return _run(call, plugin, key, remake, new_d)


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
    if _compiling():
        from dgreg.ops import call_op

        return call_op("k_grouped_gemm_contiguous", a, b, d, ks=ks, ks_tensor=ks_tensor, c=c,
                       a_scale=a_scale, b_scale=b_scale, recipe=recipe)
    try:
        key = ("k_grouped", _sig(a), _sig(b), _sig(d), c is d and c is not None, _sig(c),
               type(ks), tuple(map(_exact, ks)), _sig(ks_tensor), _sig(a_scale), _sig(b_scale),
               recipe, plugin, dispatch._pin.get())
        fast = _FAST.get(key)
    except (AttributeError, TypeError):
        key = fast = None
    if fast is not None and _aligned(a, b, d, c, a_scale, b_scale):
        call = fast[0](a, b, d, c, ks_tensor, a_scale, b_scale)
        fast[1](call)
        return call.d
    call = _call.k_grouped_call(a, b, d, ks=ks, ks_tensor=ks_tensor, c=c, a_scale=a_scale,
                                b_scale=b_scale, recipe=recipe)
    spec, problem = call.spec, call.problem
    d_shape = tuple(call.d.shape)

    def remake(a, b, d, c, ks_tensor, a_scale, b_scale):
        if d is None:
            d = torch.empty(d_shape, dtype=torch.float32, device=a.device)
        a_scale = a_scale.t() if a_scale is not None else None
        b_scale = b_scale.t() if b_scale is not None else None
        return GemmCall(spec, problem, a.t(), b.t(), d, c, a_scale, b_scale, ks_tensor)

    return _run(call, plugin, key, remake)
