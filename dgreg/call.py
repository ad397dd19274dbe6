"""Turn the arguments of a public call into a validated :class:`GemmCall`.

Every check raises :class:`InvalidArgumentError` naming the argument, what was expected and
what was received. After normalisation, tensors are *logical views* in one orientation:

============== ================ ================ ============== ==========================
grouping       a                b                d (and c)      scales (a / b)
============== ================ ================ ============== ==========================
none           [M, K]           [N, K]           [M, N]         [M, KB] / [NB, KB] or [N, KB]
m_contiguous   [M_sum, K]       [G, N, K]        [M_sum, N]     [M_sum, KB] / [G, NB|N, KB]
m_masked       [G, M, K]        [G, N, K]        [G, M, N]      [G, M, KB] / [G, NB|N, KB]
k_contiguous   [M, sum K]       [N, sum K]       [G, M, N]      [M, sum KB] / [N, sum KB]
============== ================ ================ ============== ==========================

with KB = ceil(K / 128) and NB = ceil(N / 128); UE8M0 scales are int32 with ceil(KB / 4)
packed columns. The views keep the caller's strides: ``spec.layout`` records which operands
are K-major. The stride rule every operand and output obeys is the one TMA imposes: one unit
stride, every other stride (over a dimension longer than 1) a multiple of 16 bytes, and a
16-byte aligned base address.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs
import torch

from dgreg.errors import InvalidArgumentError
from dgreg.spec import SCALE_BLOCK, DType, GemmSpec, Grouping, Layout, Problem, Recipe

__all__ = ["GemmCall", "dense_call", "k_grouped_call", "m_contiguous_call", "m_masked_call"]

_TORCH_TO_DTYPE = {
    torch.float8_e4m3fn: DType.FP8_E4M3,
    torch.bfloat16: DType.BF16,
    torch.float32: DType.FP32,
}
_DTYPE_TO_TORCH = {v: k for k, v in _TORCH_TO_DTYPE.items()}
_TMA_BYTES = 16


def torch_dtype(dtype: DType) -> torch.dtype:
    return _DTYPE_TO_TORCH[dtype]


@attrs.define(slots=True, repr=False)
class GemmCall:
    """One normalised call: spec, sizes and the logical tensor views (see the module doc)."""

    spec: GemmSpec
    problem: Problem
    a: torch.Tensor
    b: torch.Tensor
    d: torch.Tensor
    c: torch.Tensor | None = None
    a_scale: torch.Tensor | None = None
    b_scale: torch.Tensor | None = None
    # m_contiguous: int32 [M_sum] group ids (-1 = padding) or, with use_psum_layout, [G] end
    # offsets; m_masked: int32 masked_m [G]; k_contiguous: optional int32 [G] ks on the device.
    grouped_layout: torch.Tensor | None = None
    use_psum_layout: bool = False

    @property
    def device(self) -> torch.device:
        return self.a.device

    def __repr__(self) -> str:
        return f"GemmCall({self.spec.name}, {self.problem!r}, {self.a.device})"


# -- small checks ------------------------------------------------------------------------------

def _describe(x: object) -> str:
    if isinstance(x, torch.Tensor):
        return f"{str(x.dtype).removeprefix('torch.')} tensor of shape {list(x.shape)} on {x.device}"
    if isinstance(x, tuple):
        return f"a tuple of {len(x)}"
    return repr(x) if x is None or isinstance(x, (int, float, str)) else type(x).__name__


def _tensor(name: str, x: object, hint: str = "") -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise InvalidArgumentError(name, f"a torch.Tensor{hint}", _describe(x))
    return x


def _ndim(name: str, x: torch.Tensor, ndim: int, what: str) -> None:
    if x.dim() != ndim:
        raise InvalidArgumentError(name, f"a {ndim}-D tensor {what}", _describe(x))


def _shape(name: str, x: torch.Tensor, shape: Sequence[int], what: str) -> None:
    if tuple(x.shape) != tuple(shape):
        raise InvalidArgumentError(name, f"of shape {list(shape)} {what}", _describe(x))


def _dtype(name: str, x: torch.Tensor, allowed: Sequence[torch.dtype]) -> None:
    if x.dtype not in allowed:
        names = " or ".join(str(d).removeprefix("torch.") for d in allowed)
        raise InvalidArgumentError(name, names, _describe(x))


def _same_device(name: str, x: torch.Tensor, ref: torch.Tensor) -> None:
    if x.device != ref.device:
        raise InvalidArgumentError(name, f"on {ref.device}, the device of 'a'", _describe(x))


def _operand_dtype(name: str, x: torch.Tensor) -> DType:
    _dtype(name, x, (torch.float8_e4m3fn, torch.bfloat16))
    return _TORCH_TO_DTYPE[x.dtype]


def _aligned(name: str, x: torch.Tensor) -> None:
    """TMA's rule: 16-byte base, and every non-unit stride over a dim > 1 a multiple of 16 B."""
    if x.numel() == 0:
        return
    size = x.element_size()
    if x.data_ptr() % _TMA_BYTES:
        raise InvalidArgumentError(name, "a tensor whose data pointer is 16-byte aligned",
                                   f"address {x.data_ptr():#x} (a sliced view?)")
    for dim, (extent, stride) in enumerate(zip(x.shape, x.stride(), strict=True)):
        if extent > 1 and stride <= 0:
            raise InvalidArgumentError(
                name, "a tensor with positive strides (not an expanded/broadcast view)",
                f"stride {stride} in dim {dim} of {list(x.shape)}")
        if extent > 1 and stride != 1 and (stride * size) % _TMA_BYTES:
            raise InvalidArgumentError(
                name, f"a tensor whose non-unit strides are multiples of 16 bytes "
                      f"({_TMA_BYTES // size} elements), as TMA requires; pad that dimension",
                f"stride {stride} in dim {dim} of {list(x.shape)} with {size}-byte elements")


def _k_major(name: str, x: torch.Tensor) -> bool:
    """Major-ness of the logical [rows, K] view ``x`` (last two dims): True if K-major."""
    if x.numel() == 0:  # nothing to read, so no major-ness: K-major by convention
        return True
    rows, cols = x.shape[-2], x.shape[-1]
    rs, cs = x.stride(-2), x.stride(-1)
    # A unit stride only says something over a dimension longer than 1: with K = 1, an
    # operand passed transposed has logical strides (1, M) and is MN-major; calling it K-major
    # would hand a K-major kernel M as its row stride.
    if cols > 1 and cs == 1:
        return True
    if rows > 1 and rs == 1:
        return False
    if cols <= 1:
        return True
    if rows <= 1:
        return False
    raise InvalidArgumentError(
        name, "K-major or MN-major (one of its last two strides must be 1)",
        f"strides {list(x.stride())} for shape {list(x.shape)}")


def _require_k_major(name: str, x: torch.Tensor, what: str) -> None:
    if _k_major(name, x):
        return
    expected = f"K-major (stride 1 along K) for {what}"
    if x.shape[-1] == 1:  # a contiguous [rows, 1] is MN-major: its rows are 1 element apart
        expected += "; with K = 1, rows padded to a multiple of 16 bytes"
    raise InvalidArgumentError(name, expected, f"strides {list(x.stride())}")


def _row_major(name: str, x: torch.Tensor) -> None:
    if x.shape[-1] > 1 and x.stride(-1) != 1:
        raise InvalidArgumentError(name, "row-major (stride 1 along N)",
                                   f"strides {list(x.stride())} for shape {list(x.shape)}")
    # an output whose rows overlap would be written by several threads at once
    for dim in range(x.dim() - 1):
        inner = x.stride(dim + 1) * x.shape[dim + 1] if x.shape[dim + 1] > 1 else 1
        if x.shape[dim] > 1 and x.stride(dim) < inner:
            raise InvalidArgumentError(name, "a tensor whose rows do not overlap",
                                       f"strides {list(x.stride())} for shape {list(x.shape)}")


def _blocks(size: int) -> int:
    """Scale blocks along a dimension: ceil(size / 128)."""
    return -(-size // SCALE_BLOCK)


def _int(name: str, value: object, minimum: int = 0) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise InvalidArgumentError(name, f"an int >= {minimum}", _describe(value))
    return value


# -- outputs -----------------------------------------------------------------------------------

def _output(d: Any, c: Any, shape: tuple[int, ...], ref: torch.Tensor, out_dtype: Any,
            zeroed: bool = False) -> tuple[torch.Tensor, torch.Tensor | None, DType]:
    if c is not None:
        c = _tensor("c", c, " (the accumulator) or None")
        _shape("c", c, shape, "(the shape of D)")
        _dtype("c", c, (torch.float32, torch.bfloat16))
        _same_device("c", c, ref)
        _row_major("c", c)
        _aligned("c", c)
    if d is None:
        if out_dtype is None:
            out_dtype = c.dtype if c is not None else torch.bfloat16
        if out_dtype not in (torch.bfloat16, torch.float32):
            raise InvalidArgumentError("out_dtype", "torch.bfloat16 or torch.float32", _describe(out_dtype))
        # grouped ops leave some rows unwritten: allocate those as zeros, not garbage
        d = (torch.zeros if zeroed else torch.empty)(shape, dtype=out_dtype, device=ref.device)
    else:
        d = _tensor("d", d, " (the output) or None")
        _dtype("d", d, (torch.bfloat16, torch.float32))
        if out_dtype is not None and d.dtype != out_dtype:
            raise InvalidArgumentError("out_dtype", f"{d.dtype} (the dtype of 'd') or None",
                                       _describe(out_dtype))
        _shape("d", d, shape, "(D = A @ B)")
        _same_device("d", d, ref)
        _row_major("d", d)
        _aligned("d", d)
    if c is not None and c.dtype != d.dtype and c.dtype != torch.float32:
        raise InvalidArgumentError("c", f"float32 or {d.dtype} (the dtype of 'd')", _describe(c))
    return d, c, _TORCH_TO_DTYPE[d.dtype]


# -- scales ------------------------------------------------------------------------------------

def _infer_recipe(dtype: DType, a_scale: Any, b_scale: Any, recipe: Any, n: int,
                  b_blocks_dim: int) -> Recipe:
    """The recipe from an explicit argument, else from the scale tensors."""
    if dtype == DType.BF16:
        for name, sf in (("a_scale", a_scale), ("b_scale", b_scale)):
            if sf is not None:
                raise InvalidArgumentError(name, "None for bfloat16 operands", _describe(sf))
        if recipe is not None and Recipe.parse(recipe) != Recipe.NONE:
            raise InvalidArgumentError("recipe", "None for bfloat16 operands", repr(recipe))
        return Recipe.NONE
    if recipe is not None:
        try:
            return Recipe.parse(recipe)
        except ValueError:
            raise InvalidArgumentError(
                "recipe", "one of '1d2d', '1d1d', 'ue8m0', (1, 128, 128) or (1, 1, 128)",
                repr(recipe)) from None
    a_scale = _tensor("a_scale", a_scale, " of scale factors (FP8 operands need them)")
    b_scale = _tensor("b_scale", b_scale, " of scale factors (FP8 operands need them)")
    if a_scale.dtype == torch.int32:
        return Recipe.UE8M0
    if b_scale.dim() >= 2 and b_scale.shape[b_blocks_dim] == _blocks(n):
        return Recipe.R1D2D
    return Recipe.R1D1D


def _scale(name: str, sf: Any, recipe: Recipe, rows: int, kb: int, lead: tuple[int, ...],
           ref: torch.Tensor, what: str) -> torch.Tensor:
    if recipe == Recipe.UE8M0:
        expected = (*lead, rows, -(-kb // 4))
        sf = _tensor(name, sf, f" of packed UE8M0 scales, int32 {list(expected)}")
        _dtype(name, sf, (torch.int32,))
        _shape(name, sf, expected, f"(packed UE8M0 scales of {what}, 4 per int32)")
    else:
        expected = (*lead, rows, kb)
        sf = _tensor(name, sf, f" of float32 scales {list(expected)}")
        _dtype(name, sf, (torch.float32,))
        _shape(name, sf, expected, f"(scales of {what})")
    _same_device(name, sf, ref)
    return sf


def _b_scale_rows(recipe: Recipe, n: int) -> int:
    return _blocks(n) if recipe == Recipe.R1D2D else n


def _scales(dtype: DType, recipe: Recipe, a_scale: Any, b_scale: Any, *, m: int, n: int, k: int,
            lead_a: tuple[int, ...], lead_b: tuple[int, ...], ref: torch.Tensor,
            a_t: bool, b_t: bool) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Validate scales given in their operands' orientation; return logical [.., rows, KB] views."""
    if dtype == DType.BF16:
        return None, None
    kb = _blocks(k)
    a_sf = _scale_view("a_scale", a_scale, a_t)
    b_sf = _scale_view("b_scale", b_scale, b_t)
    b_rows = _b_scale_rows(recipe, n)
    a_what = "A: one per row and 128 K"
    b_what = ("B: one per 128x128 block" if recipe == Recipe.R1D2D
              else "B: one per row and 128 K")
    a_sf = _scale("a_scale", a_sf, recipe, m, kb, lead_a, ref, a_what)
    b_sf = _scale("b_scale", b_sf, recipe, b_rows, kb, lead_b, ref, b_what)
    return a_sf, b_sf


def _scale_view(name: str, sf: Any, transposed: bool) -> Any:
    """Scales come in their operand's orientation: transpose them back when the operand was."""
    if not transposed or not isinstance(sf, torch.Tensor):
        return sf
    if sf.dim() < 2:
        raise InvalidArgumentError(name, "a tensor with at least 2 dims", _describe(sf))
    return sf.transpose(-1, -2)


def _check_operand(name: str, x: Any, dims: int, what: str, ref: torch.Tensor | None) -> torch.Tensor:
    if isinstance(x, tuple):
        raise InvalidArgumentError(
            name, "a torch.Tensor (pass scale factors as a_scale=/b_scale=, or use the "
                  "DeepGEMM-compatible names that take (tensor, scales) pairs)", _describe(x))
    x = _tensor(name, x)
    _ndim(name, x, dims, what)
    _operand_dtype(name, x)
    if ref is not None:
        _same_device(name, x, ref)
    _aligned(name, x)
    return x


def _pair_dtype(a: torch.Tensor, b: torch.Tensor) -> DType:
    if a.dtype != b.dtype:
        raise InvalidArgumentError("b", f"{a.dtype} (the dtype of 'a')", _describe(b))
    return _TORCH_TO_DTYPE[a.dtype]


def _layout_arg(layout: Any, allowed: Sequence[str] = ("NT", "NN", "TN", "TT")) -> Layout:
    text = str(getattr(layout, "value", layout)).upper()
    if text not in allowed:
        raise InvalidArgumentError("layout", f"one of {', '.join(allowed)}", repr(layout))
    return Layout(text)


# -- entry points ------------------------------------------------------------------------------

def dense_call(a: Any, b: Any, d: Any = None, *, c: Any = None, a_scale: Any = None,
               b_scale: Any = None, layout: Any = "NT", out_dtype: Any = None,
               recipe: Any = None) -> GemmCall:
    """``D = C + op(a) @ op(b)``; ``layout`` says how a and b are passed (see ``dgreg.gemm``)."""
    lay = _layout_arg(layout)
    a = _check_operand("a", a, 2, "([M, K])" if lay.a_k_major else "([K, M])", None)
    b = _check_operand("b", b, 2, "([N, K])" if lay.b_k_major else "([K, N])", a)
    dtype = _pair_dtype(a, b)
    a_log = a if lay.a_k_major else a.t()
    b_log = b if lay.b_k_major else b.t()
    m, k = a_log.shape
    n = b_log.shape[0]
    if b_log.shape[1] != k:
        expected = f"[N, {k}]" if lay.b_k_major else f"[{k}, N]"
        raise InvalidArgumentError("b", f"of shape {expected} (K = {k} from 'a')", _describe(b))
    storage = Layout.from_majors(_k_major("a", a_log), _k_major("b", b_log))
    rec = _infer_recipe(dtype, a_scale, b_scale, recipe, n, -2 if lay.b_k_major else -1)
    a_sf, b_sf = _scales(dtype, rec, a_scale, b_scale, m=m, n=n, k=k, lead_a=(), lead_b=(),
                         ref=a, a_t=not lay.a_k_major, b_t=not lay.b_k_major)
    d, c, d_dtype = _output(d, c, (m, n), a, out_dtype)
    spec = GemmSpec(a_dtype=dtype, b_dtype=dtype, d_dtype=d_dtype, layout=storage,
                    grouping=Grouping.NONE, recipe=rec, accumulate=c is not None)
    return GemmCall(spec, Problem(m, n, k), a_log, b_log, d, c, a_sf, b_sf)


def m_contiguous_call(a: Any, b: Any, d: Any = None, *, grouped_layout: Any, a_scale: Any = None,
                      b_scale: Any = None, layout: Any = "NT", use_psum_layout: bool = False,
                      expected_m: Any = None, out_dtype: Any = None,
                      recipe: Any = None) -> GemmCall:
    """MoE GEMM over experts' rows stored back to back (see ``dgreg.m_grouped_gemm_contiguous``)."""
    lay = _layout_arg(layout, ("NT", "NN"))
    a = _check_operand("a", a, 2, "([M_sum, K])", None)
    b = _check_operand("b", b, 3, "([G, N, K])" if lay.b_k_major else "([G, K, N])", a)
    dtype = _pair_dtype(a, b)
    b_log = b if lay.b_k_major else b.transpose(1, 2)
    m, k = a.shape
    groups, n = b_log.shape[0], b_log.shape[1]
    if b_log.shape[2] != k:
        raise InvalidArgumentError("b", f"with K = {k} (from 'a') in its "
                                        f"{'last' if lay.b_k_major else 'middle'} dim", _describe(b))
    if groups < 1:
        raise InvalidArgumentError("b", "at least one group (G >= 1)", _describe(b))
    _require_k_major("a", a, "M-grouped GEMMs")
    storage = Layout.from_majors(True, _k_major("b", b_log))
    if not isinstance(use_psum_layout, bool):
        raise InvalidArgumentError("use_psum_layout", "a bool", _describe(use_psum_layout))
    gl = _tensor("grouped_layout", grouped_layout,
                 " of int32 group ids [M_sum] (or end offsets [G] with use_psum_layout=True)")
    _dtype("grouped_layout", gl, (torch.int32,))
    _same_device("grouped_layout", gl, a)
    if use_psum_layout:
        _shape("grouped_layout", gl, (groups,), "(each group's end row, as a prefix sum)")
    else:
        _shape("grouped_layout", gl, (m,), "(one group id per row of 'a', -1 for padding)")
    if expected_m is not None:
        _int("expected_m", expected_m, 1)
    rec = _infer_recipe(dtype, a_scale, b_scale, recipe, n, -2 if lay.b_k_major else -1)
    a_sf, b_sf = _scales(dtype, rec, a_scale, b_scale, m=m, n=n, k=k, lead_a=(),
                         lead_b=(groups,), ref=a, a_t=False, b_t=not lay.b_k_major)
    d, _, d_dtype = _output(d, None, (m, n), a, out_dtype, zeroed=True)
    spec = GemmSpec(a_dtype=dtype, b_dtype=dtype, d_dtype=d_dtype, layout=storage,
                    grouping=Grouping.M_CONTIGUOUS, recipe=rec)
    problem = Problem(m, n, k, groups, expected_m=expected_m)
    return GemmCall(spec, problem, a, b_log, d, None, a_sf, b_sf, gl, use_psum_layout)


def m_masked_call(a: Any, b: Any, d: Any = None, *, masked_m: Any, expected_m: Any = None,
                  a_scale: Any = None, b_scale: Any = None, out_dtype: Any = None,
                  recipe: Any = None) -> GemmCall:
    """MoE decode GEMM with per-group valid row counts on the device (``masked_m``)."""
    a = _check_operand("a", a, 3, "([G, M_max, K])", None)
    b = _check_operand("b", b, 3, "([G, N, K])", a)
    dtype = _pair_dtype(a, b)
    groups, m, k = a.shape
    if groups < 1:
        raise InvalidArgumentError("a", "at least one group (G >= 1)", _describe(a))
    if b.shape[0] != groups or b.shape[2] != k:
        raise InvalidArgumentError("b", f"of shape [{groups}, N, {k}] (G and K from 'a')", _describe(b))
    n = b.shape[1]
    _require_k_major("a", a, "M-grouped GEMMs")
    _require_k_major("b", b, "masked GEMMs")
    mm = _tensor("masked_m", masked_m, " of int32 valid-row counts [G]")
    _dtype("masked_m", mm, (torch.int32,))
    _shape("masked_m", mm, (groups,), "(valid rows per group)")
    _same_device("masked_m", mm, a)
    if expected_m is not None:
        _int("expected_m", expected_m, 1)
    rec = _infer_recipe(dtype, a_scale, b_scale, recipe, n, -2)
    a_sf, b_sf = _scales(dtype, rec, a_scale, b_scale, m=m, n=n, k=k, lead_a=(groups,),
                         lead_b=(groups,), ref=a, a_t=False, b_t=False)
    d, _, d_dtype = _output(d, None, (groups, m, n), a, out_dtype, zeroed=True)
    spec = GemmSpec(a_dtype=dtype, b_dtype=dtype, d_dtype=d_dtype, layout=Layout.NT,
                    grouping=Grouping.M_MASKED, recipe=rec)
    problem = Problem(m, n, k, groups, expected_m=expected_m)
    return GemmCall(spec, problem, a, b, d, None, a_sf, b_sf, mm)


def k_grouped_call(a: Any, b: Any, d: Any = None, *, ks: Any, ks_tensor: Any = None, c: Any = None,
                   a_scale: Any = None, b_scale: Any = None, recipe: Any = None) -> GemmCall:
    """MoE weight-gradient GEMM: ``D[g] = C[g] + A_g^T @ B_g`` over K slices given by ``ks``."""
    a = _check_operand("a", a, 2, "([sum K, M])", None)
    b = _check_operand("b", b, 2, "([sum K, N])", a)
    dtype = _pair_dtype(a, b)
    total_k, m = a.shape
    n = b.shape[1]
    if b.shape[0] != total_k:
        raise InvalidArgumentError("b", f"of shape [{total_k}, N] (sum K from 'a')", _describe(b))
    if isinstance(ks, torch.Tensor) or not isinstance(ks, (list, tuple)) or not ks:
        raise InvalidArgumentError("ks", "a non-empty list of per-group K sizes on the host",
                                   _describe(ks))
    ks = tuple(_int(f"ks[{i}]", v) for i, v in enumerate(ks))
    if sum(ks) != total_k:
        raise InvalidArgumentError("ks", f"sizes summing to {total_k} (the rows of 'a')",
                                   f"{list(ks)} (sum {sum(ks)})")
    if recipe is None and dtype == DType.FP8_E4M3:
        packed = isinstance(a_scale, torch.Tensor) and a_scale.dtype == torch.int32
        recipe = Recipe.UE8M0 if packed else Recipe.R1D1D
    rec = _infer_recipe(dtype, a_scale, b_scale, recipe, n, -1)
    if rec == Recipe.R1D2D:
        raise InvalidArgumentError("recipe", "1d1d or ue8m0 for K-grouped GEMMs", repr(recipe))
    if dtype == DType.FP8_E4M3:
        step = SCALE_BLOCK * (4 if rec == Recipe.UE8M0 else 1)
        bad = [v for v in ks if v % step]
        if bad:
            raise InvalidArgumentError(
                "ks", f"multiples of {step} for FP8 (scale blocks must not straddle groups)",
                f"{list(ks)}")
    groups = len(ks)
    if ks_tensor is not None:
        kt = _tensor("ks_tensor", ks_tensor, " of int32 per-group K [G] or None")
        _dtype("ks_tensor", kt, (torch.int32,))
        _shape("ks_tensor", kt, (groups,), "(one K per group, as in 'ks')")
        _same_device("ks_tensor", kt, a)
    else:
        kt = None
    a_log, b_log = a.t(), b.t()
    for name, view, mn in (("a", a_log, m), ("b", b_log, n)):
        if mn > 1 and total_k > 1 and _k_major(name, view):
            raise InvalidArgumentError(name, "MN-major ([sum K, MN] with stride 1 along MN)",
                                       f"strides {list(view.t().stride())}")
    a_sf, b_sf = _scales(dtype, rec, a_scale, b_scale, m=m, n=n, k=total_k, lead_a=(),
                         lead_b=(), ref=a, a_t=True, b_t=True)
    d, c, _ = _output(d, c, (groups, m, n), a, torch.float32 if d is None else None)
    if d.dtype != torch.float32:
        raise InvalidArgumentError("d", "float32 for K-grouped GEMMs", _describe(d))
    spec = GemmSpec(a_dtype=dtype, b_dtype=dtype, d_dtype=DType.FP32, layout=Layout.TN,
                    grouping=Grouping.K_CONTIGUOUS, recipe=rec, accumulate=c is not None)
    problem = Problem(m, n, total_k, groups, group_ks=ks)
    return GemmCall(spec, problem, a_log, b_log, d, c, a_sf, b_sf, kt)
