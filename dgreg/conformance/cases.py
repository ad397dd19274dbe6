"""Conformance cases as concrete instances: expand, claim, build inputs, run, check.

A :class:`~dgreg.conformance.casefile.Case` expands into one :class:`Instance` per combination
of its variant axes (layout, recipe, D dtype, accumulation, API, scale layout, prefix-sum
form) and shapes, each with a stable id such as ``fp8_gemm/nt/m128n4096k7168``.

Inputs are built the way DeepGEMM's tests build them: random normal BF16 operands quantised
with ``per_token_cast_to_fp8`` / ``per_block_cast_to_fp8``, grouped layouts with -1 padding
rows, and outputs poisoned with NaN before the call, in allocations whose rows are padded to
the op file's stride alignment (so any M, N, K is legal, and a store past N is caught). The
call goes through the public API (``dgreg.gemm``... or the DeepGEMM-compatible names) pinned
to one plugin, and the result is checked against ``dgreg.reference.compute(call, float64)``
with ``calc_diff`` and a max-abs bound; rows the op must not write must still hold NaN.
"""

from __future__ import annotations

import itertools
import math
import zlib
from collections.abc import Callable
from typing import Any

import attrs
import torch

import dgreg
from dgreg import call as _call
from dgreg import errors, reference
from dgreg.conformance.casefile import MUTATIONS, Accumulate, Case, Shape
from dgreg.conformance.opfile import Tolerance
from dgreg.device import Device
from dgreg.errors import UnsupportedSpecError
from dgreg.layout import (
    align,
    calc_diff,
    get_mn_major_tma_aligned_packed_ue8m0_tensor,
    get_mn_major_tma_aligned_tensor,
    pack_ue8m0_to_int,
    per_block_cast_to_fp8,
    per_token_cast_to_fp8,
)
from dgreg.spec import DType, GemmSpec, Grouping, Layout, Problem, Recipe, spec_for

__all__ = ["Claim", "ConformanceFailure", "Instance", "claim", "expand", "run"]

_TORCH = {DType.FP8_E4M3: torch.float8_e4m3fn, DType.BF16: torch.bfloat16, DType.FP32: torch.float32}
_NAN = float("nan")


class ConformanceFailure(AssertionError):
    """A plugin's result (or a negative case's outcome) broke the spec; the message says how."""


# -- instances ---------------------------------------------------------------------------------

@attrs.frozen
class Instance:
    """One concrete call of a case: every variant axis fixed, one shape."""

    case: Case
    id: str
    layout: Layout
    recipe: Recipe
    out_dtype: DType
    accumulate: Accumulate
    api: str
    scale_layout: str
    psum: bool
    shape: Shape
    spec: GemmSpec | None  # None when dgreg.spec refuses the combination (negative cases)
    problem: Problem | None
    spec_error: str | None = None

    @property
    def negative(self) -> bool:
        return self.case.expect_error is not None

    @property
    def tolerance(self) -> Tolerance:
        return self.case.tolerance or self.case.op.tolerance

    @property
    def seed(self) -> int:
        """Same inputs for every plugin and every run: the seed is a hash of the id."""
        return zlib.crc32(self.id.encode())


def expected_m(sizes: tuple[int, ...]) -> int:
    """The heuristics hint passed with masked calls: the mean group size (at least 1)."""
    return max(1, round(sum(sizes) / len(sizes)))


def contiguous_layout(sizes: tuple[int, ...], psum: bool, step: int) -> tuple[int, list[int]]:
    """Rows of A and the ``grouped_layout`` values: per-row group ids with -1 padding up to
    ``step`` rows, or (``psum``) end offsets, each group starting at the previous end rounded
    up to ``step``."""
    if not psum:
        ids = [i for g, s in enumerate(sizes) for i in [g] * s + [-1] * (align(s, step) - s)]
        return len(ids), ids
    ends, start = [], 0
    for s in sizes:
        ends.append(start + s)
        start = align(start + s, step)
    return align(ends[-1], step), ends


def _problem(case: Case, shape: Shape, psum: bool) -> Problem:
    grouping = case.op.grouping
    if grouping == Grouping.NONE:
        return Problem(shape.m, shape.n, shape.k)
    groups = len(shape.sizes)
    if grouping == Grouping.M_CONTIGUOUS:
        rows, _ = contiguous_layout(shape.sizes, psum, case.op.alignment.group_m_alignment)
        return Problem(rows, shape.n, shape.k, groups)
    if grouping == Grouping.M_MASKED:
        return Problem(shape.m_max, shape.n, shape.k, groups, expected_m=expected_m(shape.sizes))
    return Problem(shape.m, shape.n, sum(shape.sizes), groups, group_ks=shape.sizes)


def expand(case: Case) -> list[Instance]:
    """Every instance of ``case``, in file order, with its stable id."""
    op = case.op
    default = spec_for(op.op)  # ids leave the op's defaults out
    out = []
    for layout, recipe, d, acc, api, sf, psum, shape in itertools.product(
            case.layouts, case.recipes, case.out_dtypes, case.accumulate, case.apis,
            case.scale_layouts, case.psums, case.shapes):
        parts = [op.op, layout.value.lower()]
        parts += [recipe.value] if recipe != default.recipe else []
        parts += [d.short] if d != default.d_dtype else []
        parts += {False: [], True: ["acc"], "inplace": ["acc-inplace"]}[acc]
        parts += ["psum"] if psum else []
        parts += ["sf-mn"] if sf == "mn_major" else []
        parts += ["compat"] if api == "compat" else []
        parts.append(shape.label())
        if case.expect_error is not None:
            parts.append(case.name)
        spec = problem = error = None
        try:
            spec = spec_for(op.op, layout=layout, recipe=recipe, d_dtype=d, accumulate=acc is not False)
        except UnsupportedSpecError as exc:
            error = str(exc)
        try:
            problem = _problem(case, shape, psum)
        except ValueError as exc:
            if case.expect_error is None:
                raise
            error = error or str(exc)
        out.append(Instance(case, "/".join(parts), layout, recipe, d, acc, api, sf, psum,
                            shape, spec, problem, error))
    return out


# -- claiming ----------------------------------------------------------------------------------

@attrs.frozen
class Claim:
    """Whether a plugin takes an instance. ``kind``: ``claimed`` (resolution picks one of its
    candidates: ``kernel_id``), ``unclaimed`` (``reason`` quotes its candidates' refusals),
    ``excluded`` (the case names other plugins) or ``core`` (dgreg.spec refuses the spec
    itself, before any plugin: every plugin must see the same refusal)."""

    kind: str
    kernel_id: str = ""
    reason: str = ""


def claim(inst: Instance, plugin: str, device: Device, tensors_on: str) -> Claim:
    """A plugin claims an instance when resolution, pinned to it, chooses one of its candidates."""
    allowed = inst.case.plugins
    if allowed is not None and plugin not in allowed:
        return Claim("excluded", reason=f"case {inst.case.name!r} applies only to plugins "
                                        f"{', '.join(allowed)}")
    if inst.spec is None or inst.problem is None:
        return Claim("core", reason="dgreg itself refuses this spec")
    res = dgreg.resolve(inst.spec, device, inst.problem, plugin=plugin, tensors_on=tensors_on)
    chosen = res.chosen
    if chosen is not None and chosen.plugin == plugin:
        return Claim("claimed", chosen.kernel_id)
    reasons = [f"{d.candidate.kernel_id}: {d.reason}" for d in res.decisions
               if d.candidate.plugin == plugin and d.reason]
    why = "; ".join(reasons) or _offers_nothing(plugin, device)
    return Claim("unclaimed", reason=f"not claimed by {plugin} on {device.arch} ({why})")


_GPU_NAMES = {"sm90": "Hopper", "sm100": "Blackwell"}  # arch family -> the GPUs' name


def _offers_nothing(plugin: str, device: Device) -> str:
    """Why a plugin has no candidate at all here: usually the GPU it serves is absent."""
    from dgreg.registry import get_registry

    info = get_registry().find(plugin)
    archs = [arch for arch in (info.archs if info else ()) if arch != "*"]
    if not archs or device.arch in archs:
        return f"offers no kernel on {device.arch}"
    names = sorted({_GPU_NAMES.get(arch.rstrip("abf"), arch) for arch in archs})
    return f"no {' or '.join(names)} GPU; {plugin} serves {', '.join(archs)}"


# -- building inputs ---------------------------------------------------------------------------

@attrs.define
class Built:
    """The keyword arguments of the generic API call, and what the checks need besides."""

    kwargs: dict[str, Any]
    a_t: bool = False  # A passed transposed ([K, M]); its scales likewise
    b_t: bool = False
    bases: list[tuple[torch.Tensor, int]] = attrs.Factory(list)  # (allocation, logical width)
    c_before: torch.Tensor | None = None


class _Builder:
    def __init__(self, inst: Instance, device: str) -> None:
        self.inst = inst
        self.device = device
        self.gen = torch.Generator(device=device).manual_seed(inst.seed)
        self.align_bytes = inst.case.op.alignment.stride_alignment_bytes

    def randn(self, *shape: int) -> torch.Tensor:
        return torch.randn(shape, generator=self.gen, device=self.device).to(torch.bfloat16)

    def alloc(self, shape: tuple[int, ...], dtype: torch.dtype,
              fill: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """A ``shape`` view whose rows are padded to the stride alignment, and its allocation."""
        step = max(1, self.align_bytes // torch.empty((), dtype=dtype).element_size())
        padded = (*shape[:-1], align(shape[-1], step))
        if fill is None:
            base = torch.empty(padded, dtype=dtype, device=self.device)
        else:
            base = torch.full(padded, fill, dtype=dtype, device=self.device)
        return base[..., :shape[-1]], base

    def store(self, x: torch.Tensor, k_major: bool) -> torch.Tensor:
        """Pass logical ``[..., R, K]`` ``x`` K-major (as is) or MN-major (as ``[..., K, R]``)."""
        src = x if k_major else x.transpose(-1, -2)
        view, _ = self.alloc(tuple(src.shape), src.dtype)
        view.copy_(src)
        return view

    def quantize(self, x: torch.Tensor, block_rows: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """FP8 values and FP32 scales of logical ``[..., R, K]`` ``x``, as DeepGEMM's tests cast."""
        ue8m0 = self.inst.recipe == Recipe.UE8M0
        lead, (rows, k) = x.shape[:-2], x.shape[-2:]
        batch = math.prod(lead)  # explicit: reshape(-1, ...) is ambiguous for empty tensors
        if not block_rows:
            q, sf = per_token_cast_to_fp8(x.reshape(batch * rows, k), use_ue8m0=ue8m0)
            return q.reshape(x.shape), sf.reshape(*lead, rows, sf.shape[-1])
        flat = x.reshape(batch, rows, k)
        pairs = [per_block_cast_to_fp8(xi, use_ue8m0=ue8m0) for xi in flat]
        q = torch.stack([p[0] for p in pairs]).reshape(x.shape)
        sf = torch.stack([p[1] for p in pairs])
        return q, sf.reshape(*lead, *sf.shape[-2:])

    def scales(self, sf: torch.Tensor, transposed: bool) -> torch.Tensor:
        """Scales in the case's memory layout, transposed like their operand when it is."""
        mn_major = self.inst.scale_layout == "mn_major"
        if self.inst.recipe == Recipe.UE8M0:
            sf = get_mn_major_tma_aligned_packed_ue8m0_tensor(sf) if mn_major else pack_ue8m0_to_int(sf)
        elif mn_major:
            sf = get_mn_major_tma_aligned_tensor(sf)
        return sf.transpose(-1, -2) if transposed else sf

    def operands(self, built: Built, a_x: torch.Tensor, b_x: torch.Tensor) -> None:
        """Quantise (FP8) and store logical A ``[.., M, K]`` and B ``[.., N, K]``."""
        kw, fp8 = built.kwargs, self.inst.case.op.is_fp8
        if fp8:
            a_x, a_sf = self.quantize(a_x, block_rows=False)
            b_x, b_sf = self.quantize(b_x, block_rows=self.inst.recipe == Recipe.R1D2D)
            kw["a_scale"] = self.scales(a_sf, built.a_t)
            kw["b_scale"] = self.scales(b_sf, built.b_t)
            kw["recipe"] = self.inst.recipe.value
        kw["a"] = self.store(a_x, not built.a_t)
        kw["b"] = self.store(b_x, not built.b_t)

    def outputs(self, built: Built, shape: tuple[int, ...]) -> None:
        """D poisoned with NaN (padding included); C random, separate or aliasing D."""
        dtype = _TORCH[self.inst.out_dtype]
        acc = self.inst.accumulate
        d, base = self.alloc(shape, dtype, _NAN)
        built.bases.append((base, shape[-1]))
        built.kwargs["d"] = d
        if acc is False:
            return
        if acc == "inplace":
            c = d
        else:
            c, c_base = self.alloc(shape, dtype, _NAN)
            built.bases.append((c_base, shape[-1]))
        c.copy_(self.randn(*shape).to(dtype))
        built.c_before, _ = self.alloc(shape, dtype)  # padded too: the reference call checks strides
        built.c_before.copy_(c)
        built.kwargs["c"] = c

    def build(self) -> Built:
        inst, op = self.inst, self.inst.case.op
        shape, grouping = inst.shape, op.grouping
        if grouping == Grouping.NONE:
            built = Built({"layout": inst.layout.value}, a_t=not inst.layout.a_k_major,
                          b_t=not inst.layout.b_k_major)
            self.operands(built, self.randn(shape.m, shape.k), self.randn(shape.n, shape.k))
            self.outputs(built, (shape.m, shape.n))
        elif grouping == Grouping.M_CONTIGUOUS:
            rows, values = contiguous_layout(shape.sizes, inst.psum, op.alignment.group_m_alignment)
            groups = len(shape.sizes)
            built = Built({"layout": inst.layout.value, "use_psum_layout": inst.psum,
                           "grouped_layout": self.int32(values)}, b_t=not inst.layout.b_k_major)
            self.operands(built, self.randn(rows, shape.k), self.randn(groups, shape.n, shape.k))
            self.outputs(built, (rows, shape.n))
        elif grouping == Grouping.M_MASKED:
            groups = len(shape.sizes)
            built = Built({"masked_m": self.int32(shape.sizes),
                           "expected_m": expected_m(shape.sizes)})
            self.operands(built, self.randn(groups, shape.m_max, shape.k),
                          self.randn(groups, shape.n, shape.k))
            self.outputs(built, (groups, shape.m_max, shape.n))
        else:
            total = sum(shape.sizes)
            built = Built({"ks": list(shape.sizes)}, a_t=True, b_t=True)
            self.operands(built, self.randn(shape.m, total), self.randn(shape.n, total))
            self.outputs(built, (len(shape.sizes), shape.m, shape.n))
        return built

    def int32(self, values: Any) -> torch.Tensor:
        return torch.tensor(list(values), dtype=torch.int32, device=self.device)


# -- calling -----------------------------------------------------------------------------------

_REFERENCE_BUILDERS: dict[Grouping, Callable[..., Any]] = {
    Grouping.NONE: _call.dense_call,
    Grouping.M_CONTIGUOUS: _call.m_contiguous_call,
    Grouping.M_MASKED: _call.m_masked_call,
    Grouping.K_CONTIGUOUS: _call.k_grouped_call,
}
# What DeepGEMM callers pass as ``recipe`` (None: leave the default). FP32 1d2d and packed
# UE8M0 scales are inferred from the scales; 1d1d must be named, except by the K-grouped
# entry point, whose default is already (1, 1, 128) for FP32 and packed scales alike.
_COMPAT_RECIPES: dict[str, Any] = {"1d2d": None, "1d1d": (1, 1, 128), "ue8m0": None}


def _invoke(inst: Instance, kw: dict[str, Any]) -> Any:
    op = inst.case.op
    if inst.api == "generic":
        return getattr(dgreg, op.entry_point.rpartition(".")[2])(**kw)
    dt = "fp8" if op.is_fp8 else "bf16"
    lay = inst.layout.value.lower()
    name = {Grouping.NONE: f"{dt}_gemm_{lay}",
            Grouping.M_CONTIGUOUS: f"m_grouped_{dt}_gemm_{lay}_contiguous",
            Grouping.M_MASKED: f"m_grouped_{dt}_gemm_nt_masked",
            Grouping.K_CONTIGUOUS: f"k_grouped_{dt}_gemm_tn_contiguous"}[op.grouping]
    if name not in op.deepgemm_names:
        raise ConformanceFailure(f"{op.path.name} does not declare the DeepGEMM name {name!r}")
    fn = getattr(dgreg, name)
    a = (kw["a"], kw.get("a_scale")) if op.is_fp8 else kw["a"]
    b = (kw["b"], kw.get("b_scale")) if op.is_fp8 else kw["b"]
    extra: dict[str, Any] = {}
    recipe = _COMPAT_RECIPES.get(kw.get("recipe"), kw.get("recipe"))
    k_default = op.grouping == Grouping.K_CONTIGUOUS and kw.get("recipe") in _COMPAT_RECIPES
    if op.is_fp8 and recipe is not None and not k_default:
        extra["recipe"] = recipe
    if op.grouping == Grouping.NONE:
        return fn(a, b, kw["d"], c=kw.get("c"), **extra)
    if op.grouping == Grouping.M_CONTIGUOUS:
        return fn(a, b, kw["d"], kw["grouped_layout"], use_psum_layout=kw["use_psum_layout"], **extra)
    if op.grouping == Grouping.M_MASKED:
        return fn(a, b, kw["d"], kw["masked_m"], kw["expected_m"], **extra)
    ks_tensor = kw.get("ks_tensor")
    if ks_tensor is None:
        ks_tensor = torch.tensor(kw["ks"], dtype=torch.int32, device=kw["a"].device)
    return fn(a, b, kw["d"], kw["ks"], grouped_layout=ks_tensor, c=kw.get("c"), **extra)


def _reference_call(inst: Instance, built: Built) -> Any:
    """The same arguments through dgreg.call's normalisation, with a fresh D and the original C."""
    kw = dict(built.kwargs, d=None)
    if built.c_before is not None:
        kw["c"] = built.c_before
    if inst.case.op.grouping != Grouping.K_CONTIGUOUS:
        kw["out_dtype"] = _TORCH[inst.out_dtype]
    return _REFERENCE_BUILDERS[inst.case.op.grouping](**kw)


def run(inst: Instance, plugin: str, device: str) -> None:
    """Run one instance through the public API pinned to ``plugin``; raise on any deviation."""
    if inst.negative:
        _run_negative(inst, plugin, device)
        return
    built = _Builder(inst, device).build()
    d = built.kwargs["d"]
    with dgreg.use(plugin):
        result = _invoke(inst, built.kwargs)
    if result is not d:
        raise ConformanceFailure("the call did not return its output tensor 'd'")
    ref = _reference_call(inst, built)
    spec = inst.spec
    if inst.problem.m == 0 or inst.problem.n == 0 or inst.problem.k == 0:
        # An empty operand has no major-ness: dgreg.call labels it K-major, and the core
        # answers empty problems itself (no plugin runs), so the label does not matter.
        spec = attrs.evolve(spec, layout=ref.spec.layout)
    if ref.spec != spec or ref.problem != inst.problem:
        raise ConformanceFailure(  # the harness and dgreg.call disagree: a bug here, not in the plugin
            f"harness inconsistency: the case means {inst.spec!r} {inst.problem!r} but "
            f"dgreg.call normalised the inputs to {ref.spec!r} {ref.problem!r}")
    expected, written = reference.compute(ref, torch.float64)
    _check(inst, built, expected, written)


def _check(inst: Instance, built: Built, expected: torch.Tensor, written: torch.Tensor | None) -> None:
    d = built.kwargs["d"]
    got = d.to(torch.float64)
    mask = (torch.ones_like(expected, dtype=torch.bool) if written is None
            else written.expand(expected.shape))
    problems = []
    nan = int(torch.isnan(got[mask]).sum())
    if nan:
        problems.append(f"{nan} of {int(mask.sum())} elements the op must write hold NaN "
                        f"(never written, or NaN produced)")
    overwritten = int((~torch.isnan(got[~mask])).sum())
    if overwritten:
        rows = (~torch.isnan(got) & ~mask).any(dim=-1).nonzero()[:4].tolist()
        problems.append(f"{overwritten} elements of rows the op must leave untouched were "
                        f"written (they held NaN), e.g. rows {rows}")
    for base, width in built.bases:
        if not bool(torch.isnan(base[..., width:]).all()):
            problems.append(f"a store past N = {width} into the padding of a row-padded output")
    c = built.kwargs.get("c")
    if c is not None and c is not d and not torch.equal(c, built.c_before):
        problems.append("the accumulator C was modified (only D may be written)")
    summary = ""
    if not nan and mask.any():
        tol = inst.tolerance
        diff = calc_diff(got[mask], expected[mask])
        err = torch.where(mask, (got - expected).abs(), 0.0)
        worst = float(err.max())
        scale = float(torch.where(mask, expected.abs(), 0.0).max())
        bound = tol.max_abs_rel * scale
        summary = f"calc_diff {diff:.3g}, max |D - ref| {worst:.4g} (bound {bound:.4g})"
        if not diff < tol.max_calc_diff:
            problems.append(f"calc_diff(D, ref) = {diff:.4g}, not below {tol.max_calc_diff:g}")
        if worst > bound:
            where = [int(i) for i in torch.unravel_index(err.argmax(), err.shape)]
            problems.append(
                f"max |D - ref| = {worst:.4g} exceeds {tol.max_abs_rel:g} x max |ref| "
                f"({scale:.4g}) = {bound:.4g} at {where}: D holds {float(got[tuple(where)]):.6g}, "
                f"the reference {float(expected[tuple(where)]):.6g}")
    if problems:
        raise ConformanceFailure("; ".join(problems) + (f" [{summary}]" if summary else ""))


def _run_negative(inst: Instance, plugin: str, device: str) -> None:
    case = inst.case
    wanted = getattr(errors, case.expect_error)
    if inst.spec_error is not None and issubclass(UnsupportedSpecError, wanted):
        _check_error(inst, UnsupportedSpecError(inst.spec_error), wanted, "dgreg.spec")
        return
    built = _Builder(inst, device).build()
    if case.mutate is not None:
        _MUTATORS[case.mutate](built, inst)
    try:
        with dgreg.use(plugin):
            _invoke(inst, built.kwargs)
    except Exception as exc:  # whatever it raised is judged below
        _check_error(inst, exc, wanted, "the call")
        return
    what = f" ({MUTATIONS[case.mutate]})" if case.mutate else ""
    mentioning = " mentioning " + ", ".join(map(repr, case.match)) if case.match else ""
    raise ConformanceFailure(f"expected {case.expect_error}{what}{mentioning}, but the call "
                             f"returned normally")


def _check_error(inst: Instance, exc: BaseException, wanted: type, source: str) -> None:
    case = inst.case
    if not isinstance(exc, wanted):
        raise ConformanceFailure(f"expected {case.expect_error} but {source} raised "
                                 f"{type(exc).__name__}: {exc}") from exc
    missing = [fragment for fragment in case.match or () if fragment not in str(exc)]
    if missing:
        raise ConformanceFailure(f"{source} raised {type(exc).__name__} as expected, but its "
                                 f"message lacks {', '.join(map(repr, missing))}: {exc}") from exc


# -- mutations (negative cases) ----------------------------------------------------------------

def _restore(x: torch.Tensor, extra: int, fill: float | None = None) -> torch.Tensor:
    """``x`` copied into rows padded to 16 bytes plus ``extra`` elements (1: a misaligned stride)."""
    step = max(1, 16 // x.element_size())  # TMA's granule; any misalignment will do here
    shape = (*x.shape[:-1], align(x.shape[-1], step) + extra)
    if fill is None:
        base = torch.empty(shape, dtype=x.dtype, device=x.device)
    else:
        base = torch.full(shape, fill, dtype=x.dtype, device=x.device)
    view = base[..., :x.shape[-1]]
    view.copy_(x)
    return view


def _misaligned_base(x: torch.Tensor) -> torch.Tensor:
    storage = torch.empty(x.numel() + 1, dtype=x.dtype, device=x.device)
    view = storage[1:].view(x.shape)
    view.copy_(x)
    return view


def _narrow_last(x: torch.Tensor, dim: int) -> torch.Tensor:
    return x.narrow(dim, 0, x.shape[dim] - 1)


def _set(name: str, fn: Callable[[Built, Instance], Any]) -> Callable[[Built, Instance], None]:
    def mutate(built: Built, inst: Instance) -> None:
        built.kwargs[name] = fn(built, inst)

    return mutate


def _other_dtype(x: torch.Tensor) -> torch.Tensor:
    return x.to(torch.bfloat16 if x.dtype == torch.float8_e4m3fn else torch.float8_e4m3fn)


def _wrong_k_b(built: Built, inst: Instance) -> torch.Tensor:
    b = built.kwargs["b"]
    k_dim = -2 if built.b_t else -1
    shape = list(b.shape)
    shape[k_dim] += 1
    return _restore(torch.zeros(shape, dtype=torch.float32, device=b.device).to(b.dtype), 0)


def _mixed_block(built: Built, inst: Instance) -> torch.Tensor:
    ids = built.kwargs["grouped_layout"].clone()
    groups = len(inst.shape.sizes)
    first = int((ids >= 0).nonzero()[0, 0])
    step = inst.case.op.alignment.group_m_alignment
    ids[first // step * step + step - 1] = (int(ids[first]) + 1) % groups
    return ids


def _out_of_range(built: Built, inst: Instance) -> torch.Tensor:
    gl = built.kwargs["grouped_layout"].clone()
    gl[-1 if inst.psum else 0] = (inst.problem.m + 1) if inst.psum else len(inst.shape.sizes)
    return gl


def _changed(name: str, index: int, value: Callable[[Instance], int]) -> Callable[[Built, Instance], Any]:
    def fn(built: Built, inst: Instance) -> torch.Tensor:
        t = built.kwargs[name].clone()
        t[index] = value(inst)
        return t

    return fn


_MUTATORS: dict[str, Callable[[Built, Instance], None]] = {
    "a_dtype_float16": _set("a", lambda b, i: b.kwargs["a"].to(torch.float16)),
    "b_other_dtype": _set("b", lambda b, i: _other_dtype(b.kwargs["b"])),
    "a_misaligned_stride": _set("a", lambda b, i: _restore(b.kwargs["a"], 1)),
    "b_misaligned_stride": _set("b", lambda b, i: _restore(b.kwargs["b"], 1)),
    "d_misaligned_stride": _set("d", lambda b, i: _restore(b.kwargs["d"], 1, _NAN)),
    "a_misaligned_base": _set("a", lambda b, i: _misaligned_base(b.kwargs["a"])),
    "a_not_k_major": _set("a", lambda b, i: _restore(b.kwargs["a"].transpose(-1, -2), 0)
                          .transpose(-1, -2)),
    "b_wrong_k": _set("b", _wrong_k_b),
    "a_scale_shape": _set("a_scale", lambda b, i: _narrow_last(b.kwargs["a_scale"],
                                                               -2 if b.a_t else -1)),
    "b_scale_shape": _set("b_scale", lambda b, i: _narrow_last(b.kwargs["b_scale"],
                                                               -1 if b.b_t else -2)),
    "a_scale_dtype": _set("a_scale", lambda b, i: b.kwargs["a_scale"].to(torch.float64)),
    "a_scale_missing": _set("a_scale", lambda b, i: None),
    "scales_for_bf16": _set("a_scale", lambda b, i: torch.ones(1, 1, device=b.kwargs["a"].device)),
    "recipe_unknown": _set("recipe", lambda b, i: "2d2d"),
    "recipe_none": _set("recipe", lambda b, i: "none"),
    "layout_unknown": _set("layout", lambda b, i: "XY"),
    "d_dtype_float16": _set("d", lambda b, i: b.kwargs["d"].to(torch.float16)),
    "d_shape": _set("d", lambda b, i: _restore(torch.cat([b.kwargs["d"]] * 2, dim=-1), 0, _NAN)),
    "d_column_major": _set("d", lambda b, i: _restore(b.kwargs["d"].transpose(-1, -2), 0, _NAN)
                           .transpose(-1, -2)),
    "c_shape": _set("c", lambda b, i: _narrow_last(b.kwargs["d"], -2).clone()),
    "masked_m_dtype": _set("masked_m", lambda b, i: b.kwargs["masked_m"].to(torch.int64)),
    "masked_m_over": _set("masked_m", _changed("masked_m", 0, lambda i: i.shape.m_max + 1)),
    "masked_m_negative": _set("masked_m", _changed("masked_m", 0, lambda i: -1)),
    "expected_m_zero": _set("expected_m", lambda b, i: 0),
    "grouped_layout_dtype": _set("grouped_layout", lambda b, i: b.kwargs["grouped_layout"].long()),
    "grouped_layout_shape": _set("grouped_layout", lambda b, i: b.kwargs["grouped_layout"][:-1]),
    "grouped_layout_out_of_range": _set("grouped_layout", _out_of_range),
    "grouped_layout_mixed_block": _set("grouped_layout", _mixed_block),
    "psum_decreasing": _set("grouped_layout", lambda b, i: b.kwargs["grouped_layout"].flip(0)),
    "ks_sum": _set("ks", lambda b, i: [*b.kwargs["ks"][:-1], b.kwargs["ks"][-1] + 1]),
    "ks_tensor_mismatch": _set("ks_tensor", lambda b, i: torch.tensor(
        [*b.kwargs["ks"][:-1], b.kwargs["ks"][-1] + 1], dtype=torch.int32,
        device=b.kwargs["a"].device)),
}
