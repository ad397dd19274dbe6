"""The conformance case files, ``specs/conformance/*.toml``: each ``[[case]]`` validated
against the op it names.

Keys of a ``[[case]]`` (values marked * may be an array: the case expands over each):

- ``name`` (unique in the file), ``op`` (an op file's ``op``), ``note`` (why the case exists).
- Variants: ``layout``*, ``recipe``*, ``out_dtype``*, ``accumulate``* (true, false or
  ``"inplace"``: C is D), ``api``* (``"generic"``: ``dgreg.gemm``...; ``"compat"``: the
  DeepGEMM names), ``scale_layout``* (``"k_major"`` or ``"mn_major"``, FP8 only), ``psum``*
  (prefix-sum grouped layout, M-contiguous only). Defaults: those of ``dgreg.spec_for``.
- Shapes, by grouping: dense ``shapes = [[m, n, k], ...]`` or ``m = [...]`` with
  ``nk = [[n, k], ...]``; M-grouped ``group_sizes = [[rows per group, ...], ...]`` and/or
  ``uniform_groups = [[groups, rows], ...]`` with ``nk`` (masked: optional ``m_max``);
  K-grouped the same with K per group, and ``mn = [[m, n], ...]``.
- Where it runs: ``size = "large"`` (a GPU, or ``--dgreg-include-large``), ``gpu_only``,
  ``plugins = [...]`` (only these plugins, e.g. checks only a host-side implementation
  can make).
- Expectation: a result within the op's tolerance (overridable with ``max_calc_diff`` /
  ``max_abs_rel``), or ``expect_error`` (a :mod:`dgreg.errors` class) with ``match``* (message
  fragments) and an optional ``mutate`` (one of :data:`MUTATIONS`).

Validation is strict (see :mod:`.strict_toml`); beyond types, a positive case may only use
what its op file allows, and its shapes must be ones the op accepts (group K multiples,
masked_m within M_max): a case that means to provoke an error says so with ``expect_error``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs

from dgreg import errors
from dgreg.conformance.opfile import OpSpec, Tolerance, parse_layout
from dgreg.conformance.strict_toml import Table, kind_of, parse_word, read_toml
from dgreg.errors import SpecFileError
from dgreg.spec import DType, Grouping, Layout, Recipe, spec_for

__all__ = ["MUTATIONS", "Accumulate", "Case", "Shape", "iter_case_files", "load_case_file"]

#: How a case may corrupt otherwise valid arguments to provoke a named error (negative cases).
#: The implementations live in :mod:`dgreg.conformance.cases`; a test keeps the two in step.
MUTATIONS: dict[str, str] = {
    "a_dtype_float16": "A in float16, which no GEMM takes",
    "b_other_dtype": "B in the other operand dtype than A (FP8 with BF16)",
    "a_misaligned_stride": "A's non-unit stride one element past a 16-byte multiple",
    "b_misaligned_stride": "B's non-unit stride one element past a 16-byte multiple",
    "d_misaligned_stride": "D's row stride one element past a 16-byte multiple",
    "a_misaligned_base": "A starting one element into its storage "
                         "(data pointer not 16-byte aligned)",
    "a_not_k_major": "A passed MN-major where the op needs it K-major",
    "b_wrong_k": "B with one K element more than A",
    "a_scale_shape": "A's scales missing their last K block",
    "b_scale_shape": "B's scales missing their last row (or row block)",
    "a_scale_dtype": "A's scales in float64",
    "a_scale_missing": "no A scales for FP8 operands",
    "scales_for_bf16": "scale factors passed with BF16 operands",
    "recipe_unknown": "recipe '2d2d', which does not exist",
    "recipe_none": "recipe 'none' with FP8 operands",
    "layout_unknown": "layout 'XY'",
    "d_dtype_float16": "D in float16",
    "d_shape": "D with twice the columns it should have",
    "d_column_major": "D passed as a transposed (column-major) view",
    "c_shape": "C with one row too few",
    "masked_m_dtype": "masked_m in int64",
    "masked_m_over": "masked_m[0] = M_max + 1 (a value only a host-side check can see)",
    "masked_m_negative": "masked_m[0] = -1 (a value only a host-side check can see)",
    "expected_m_zero": "expected_m = 0",
    "grouped_layout_dtype": "grouped_layout in int64",
    "grouped_layout_shape": "grouped_layout one element short",
    "grouped_layout_out_of_range": "a row assigned to group G (one past the last)",
    "grouped_layout_mixed_block": "two groups inside one 128-row block",
    "psum_decreasing": "prefix-sum end offsets that decrease",
    "ks_sum": "ks summing to one more than the rows of A",
    "ks_tensor_mismatch": "ks_tensor disagreeing with ks (a value only a host-side check can see)",
}

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_APIS = ("generic", "compat")
_SCALE_LAYOUTS = ("k_major", "mn_major")
_SIZES = ("small", "large")


@attrs.frozen
class Shape:
    """One shape of a case. Meaning by grouping:

    - none: ``m``, ``n``, ``k``.
    - m_contiguous: ``sizes`` = rows per group, ``n``, ``k``.
    - m_masked: ``sizes`` = valid rows per group (masked_m), ``m_max``, ``n``, ``k``.
    - k_contiguous: ``sizes`` = K per group, ``m``, ``n``.

    ``uniform`` records that the case gave ``[groups, size]`` (it shortens the id).
    """

    m: int | None = None
    n: int = 0
    k: int | None = None
    sizes: tuple[int, ...] | None = None
    m_max: int | None = None
    uniform: bool = False

    def label(self) -> str:
        """The shape part of an instance id: ``m128n4096k7168``, ``g4m8192n4096k7168``..."""
        if self.sizes is None:
            return f"m{self.m}n{self.n}k{self.k}"
        groups = f"g{len(self.sizes)}"
        sizes = str(self.sizes[0]) if self.uniform else "_".join(map(str, self.sizes))
        if self.m_max is not None:  # masked
            cap = "" if self.m_max == max(self.sizes) else f"max{self.m_max}"  # the default
            return f"{groups}m{sizes}{cap}n{self.n}k{self.k}"
        if self.k is None:  # K-grouped
            return f"{groups}m{self.m}n{self.n}k{sizes}"
        return f"{groups}m{sizes}n{self.n}k{self.k}"


#: ``accumulate`` values: no C, a separate C, or C aliasing D (``d += A @ B``).
Accumulate = bool | str


@attrs.frozen
class Case:
    """One ``[[case]]`` of a conformance file, validated; expanded by :mod:`.cases`."""

    path: Path
    index: int
    name: str
    op: OpSpec
    layouts: tuple[Layout, ...]
    recipes: tuple[Recipe, ...]
    out_dtypes: tuple[DType, ...]
    accumulate: tuple[Accumulate, ...]
    apis: tuple[str, ...]
    scale_layouts: tuple[str, ...]
    psums: tuple[bool, ...]
    shapes: tuple[Shape, ...]
    size: str = "small"
    gpu_only: bool = False
    plugins: tuple[str, ...] | None = None
    expect_error: str | None = None
    match: tuple[str, ...] | None = None  # fragments the error message must all contain
    mutate: str | None = None
    tolerance: Tolerance | None = None
    note: str = ""

    @property
    def where(self) -> str:
        return f"case[{self.name}]"


def _error_class(name: str) -> type[Exception] | None:
    cls = getattr(errors, name, None)
    if isinstance(cls, type) and issubclass(cls, errors.DgregError):
        return cls
    return None


def _parse_accumulate(value: Any) -> Accumulate:
    if isinstance(value, bool) or value == "inplace":
        return value
    raise ValueError(f"must be true, false or \"inplace\" (got {value!r})")


_SHAPE_KEYS = {
    Grouping.NONE: ("shapes", "m", "nk"),
    Grouping.M_CONTIGUOUS: ("group_sizes", "uniform_groups", "nk"),
    Grouping.M_MASKED: ("group_sizes", "uniform_groups", "nk", "m_max"),
    Grouping.K_CONTIGUOUS: ("group_sizes", "uniform_groups", "mn"),
}
_ALL_SHAPE_KEYS = ("shapes", "m", "nk", "mn", "group_sizes", "uniform_groups", "m_max")
_CASE_KEYS = frozenset({
    "name", "op", "note", "layout", "recipe", "out_dtype", "accumulate", "api", "scale_layout",
    "psum", *_ALL_SHAPE_KEYS, "size", "gpu_only", "plugins", "expect_error", "match", "mutate",
    "max_calc_diff", "max_abs_rel"})


def _shapes(t: Table, op: OpSpec, negative: bool) -> tuple[Shape, ...]:
    grouping = op.grouping
    for key in _ALL_SHAPE_KEYS:
        if t.has(key) and key not in _SHAPE_KEYS[grouping]:
            t.known.append(key)
            allowed = ", ".join(_SHAPE_KEYS[grouping])
            raise t.fail(key, f"is not a shape key of {op.op} cases (use {allowed})")
    if grouping == Grouping.NONE:
        explicit = t.int_rows("shapes", 3, "[m, n, k] arrays")
        ms = t.int_list("m")
        nk = t.int_rows("nk", 2, "[n, k] arrays")
        if explicit is not None and (ms is not None or nk is not None):
            raise t.fail("shapes", "give either shapes or m + nk, not both")
        if explicit is not None:
            return tuple(Shape(m=m, n=n, k=k) for m, n, k in explicit)
        if ms is None or nk is None:
            raise t.fail("shapes" if ms is None and nk is None else ("m" if ms is None else "nk"),
                         "missing (give shapes = [[m, n, k], ...] or m = [...] "
                         "with nk = [[n, k], ...])")
        return tuple(Shape(m=m, n=n, k=k) for m in ms for n, k in nk)
    groups = _group_sets(t)
    if grouping == Grouping.K_CONTIGUOUS:
        mn = t.int_rows("mn", 2, "[m, n] arrays")
        if mn is None:
            raise t.fail("mn", "missing (required: [[m, n], ...])")
        return tuple(Shape(m=m, n=n, sizes=sizes, uniform=uniform)
                     for sizes, uniform in groups for m, n in mn)
    nk = t.int_rows("nk", 2, "[n, k] arrays")
    if nk is None:
        raise t.fail("nk", "missing (required: [[n, k], ...])")
    if grouping == Grouping.M_CONTIGUOUS:
        return tuple(Shape(n=n, k=k, sizes=sizes, uniform=uniform)
                     for sizes, uniform in groups for n, k in nk)
    m_max = t.integer("m_max", 0, required=False)
    shapes = []
    for sizes, uniform in groups:
        cap = max(sizes) if m_max is None else m_max
        if max(sizes) > cap and not negative:
            raise t.fail("m_max", f"is {cap} but a group has {max(sizes)} valid rows "
                                  f"(masked_m must not exceed M_max)")
        shapes.extend(Shape(n=n, k=k, sizes=sizes, m_max=cap, uniform=uniform) for n, k in nk)
    return tuple(shapes)


def _group_sets(t: Table) -> list[tuple[tuple[int, ...], bool]]:
    explicit = t.int_rows("group_sizes", None, "non-empty arrays of per-group sizes")
    uniform = t.int_rows("uniform_groups", 2, "[groups, size] arrays")
    if explicit is None and uniform is None:
        raise t.fail("group_sizes", "missing (give group_sizes = [[size, ...], ...] or "
                                    "uniform_groups = [[groups, size], ...])")
    sets = [(sizes, False) for sizes in explicit or ()]
    for i, (groups, size) in enumerate(uniform or ()):
        if groups < 1:
            raise t.fail(f"uniform_groups[{i}][0]", f"must be at least 1 group (got {groups})")
        sets.append(((size,) * groups, True))
    return sets


def _load_case(path: Path, index: int, data: Any, ops: dict[str, OpSpec]) -> Case:
    if not isinstance(data, dict):
        raise SpecFileError(path, f"case[{index}]", f"must be a table (got {kind_of(data)})")
    t = Table(path, f"case[{index}]", data)
    name = t.string("name")
    if not _NAME_RE.match(name):
        raise t.fail("name", f"must be lower-case letters, digits, '_' or '-' (got {name!r})")
    t.where = f"case[{name}]"
    for key in data:  # a misspelt key first: it would otherwise read as a missing one
        if key not in _CASE_KEYS:
            raise t.fail(key, f"unknown key (known keys: {', '.join(sorted(_CASE_KEYS))})")
    op_name = t.string("op")
    if op_name not in ops:
        known = ", ".join(ops) if ops else "none loaded"
        raise t.fail("op", f"unknown operation {op_name!r} (known: {known})")
    op = ops[op_name]
    note = t.string("note", required=False, default="")
    expect_error = t.string("expect_error", required=False)
    if expect_error is not None and _error_class(expect_error) is None:
        raise t.fail("expect_error", f"{expect_error!r} is not an error class of dgreg.errors")
    negative = expect_error is not None
    match = t.choices("match", str, "a message fragment", default=()) or None
    mutate = t.string("mutate", required=False)
    for key, value in (("match", match), ("mutate", mutate)):
        if value is not None and not negative:
            raise t.fail(key, "only applies to negative cases (set expect_error)")
    if mutate is not None and mutate not in MUTATIONS:
        raise t.fail("mutate", f"unknown mutation {mutate!r} (known: {', '.join(MUTATIONS)})")
    k_grouped = op.grouping == Grouping.K_CONTIGUOUS
    default = spec_for(op.op)
    layouts = t.choices("layout", parse_layout, "a layout", default=(default.layout,))
    recipes = t.choices("recipe", Recipe.parse, "a recipe name", default=(default.recipe,))
    out_dtypes = t.choices("out_dtype", DType.parse, "a dtype name", default=(default.d_dtype,))
    accumulate = t.choices("accumulate", _parse_accumulate, 'true, false or "inplace"',
                           default=(False,), scalar_types=(bool, str))
    apis = t.choices("api", parse_word(_APIS), "an API name", default=("generic",))
    scale_layouts = t.choices("scale_layout", parse_word(_SCALE_LAYOUTS), "a scale layout",
                              default=("k_major",))
    psums = t.choices("psum", lambda v: v, "a boolean", default=(False,), scalar_types=(bool,))
    if t.has("scale_layout") and not op.is_fp8:
        raise t.fail("scale_layout", f"{op.op} takes no scale factors")
    if t.has("psum") and op.grouping != Grouping.M_CONTIGUOUS:
        raise t.fail("psum", f"only M-contiguous grouped GEMMs have a prefix-sum layout, "
                             f"not {op.op}")
    if not negative:
        for key, chosen, allowed in (("layout", layouts, op.layouts),
                                     ("recipe", recipes, op.recipes),
                                     ("out_dtype", out_dtypes, op.d_dtypes)):
            for item in chosen:
                if item not in allowed:
                    raise t.fail(key, f"{item.value!r} is not allowed for {op.op} (op file: "
                                      f"{', '.join(x.value for x in allowed)}); a case expecting "
                                      f"that to fail needs expect_error")
        if any(acc is not False for acc in accumulate) and not op.accumulate:
            raise t.fail("accumulate",
                         f"{op.op} takes no accumulator C (op file: accumulate = false)")
    shapes = _shapes(t, op, negative)
    if k_grouped and not negative:
        for recipe in recipes:
            step = op.alignment.group_k_step(recipe)
            for shape in shapes:
                bad = [k for k in shape.sizes or () if k % step]
                if bad:
                    raise t.fail("group_sizes", f"group K {bad[0]} is not a multiple of {step}, "
                                                f"which {op.op} with recipe {recipe.value} needs; "
                                                f"a case expecting that to fail needs expect_error")
    size = t.one("size", parse_word(_SIZES), required=False, default="small")
    gpu_only = t.boolean("gpu_only", required=False, default=False)
    plugins = t.choices("plugins", str, "a plugin name", default=()) or None
    calc = t.positive_number("max_calc_diff", required=False)
    abs_rel = t.positive_number("max_abs_rel", required=False)
    tolerance = None
    if calc is not None or abs_rel is not None:
        if negative:
            raise t.fail("max_calc_diff" if calc is not None else "max_abs_rel",
                         "negative cases compare no results")
        tolerance = Tolerance(calc or op.tolerance.max_calc_diff,
                              abs_rel or op.tolerance.max_abs_rel)
    t.done()
    return Case(path, index, name, op, layouts, recipes, out_dtypes, accumulate, apis,
                scale_layouts, psums, shapes, size, gpu_only, plugins, expect_error, match,
                mutate, tolerance, note)


def load_case_file(path: Path, ops: dict[str, OpSpec]) -> tuple[Case, ...]:
    """The cases of one ``specs/conformance/*.toml`` file, validated against ``ops``."""
    path = Path(path)
    t = Table(path, "", read_toml(path))
    t.string("description", required=False)
    raw = t.typed("case", (list,), "an array of tables ([[case]])")
    t.done()
    if not raw:
        raise t.fail("case", "must hold at least one [[case]]")
    cases = []
    seen: dict[str, int] = {}
    for index, data in enumerate(raw):
        case = _load_case(path, index, data, ops)
        if case.name in seen:
            raise SpecFileError(path, f"case[{index}].name",
                                f"{case.name!r} is already the name of case[{seen[case.name]}]")
        seen[case.name] = index
        cases.append(case)
    return tuple(cases)


def iter_case_files(spec_dir: Path) -> Iterator[Path]:
    """The conformance files under ``spec_dir``, in a stable order."""
    yield from sorted(Path(spec_dir).rglob("*.toml"))
