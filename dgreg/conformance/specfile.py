"""Load and validate the TOML spec files: ``specs/ops/*.toml`` and ``specs/conformance/*.toml``.

Validation is strict because a typo in a spec file silently drops coverage: an unknown key,
a missing key, a wrong type, an unknown operation or a malformed shape raises
:class:`~dgreg.errors.SpecFileError` naming the file, the key path (``case[dense_edges].shapes[2]``)
and the problem. The op files must also agree with :mod:`dgreg.spec`, which is the single
source of truth for which dtype / layout / recipe combinations exist: a file that declares a
combination dgreg does not define, or misses one it does, is an error.

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

This module does not import torch; the public entry points and the DeepGEMM-compatible
names an op file declares are checked (importing torch) by :func:`load_ops`.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import attrs

from dgreg import errors
from dgreg.errors import SpecFileError, UnsupportedSpecError
from dgreg.spec import OPS, SCALE_BLOCK, DType, GemmSpec, Grouping, Layout, Recipe, spec_for

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

__all__ = [
    "MUTATIONS",
    "Accumulate",
    "Alignment",
    "Case",
    "OpSpec",
    "Shape",
    "Tolerance",
    "load_case_file",
    "load_ops",
    "read_toml",
    "repo_specs_dir",
]

#: How a case may corrupt otherwise valid arguments to provoke a named error (negative cases).
#: The implementations live in :mod:`dgreg.conformance.cases`; a test keeps the two in step.
MUTATIONS: dict[str, str] = {
    "a_dtype_float16": "A in float16, which no GEMM takes",
    "b_other_dtype": "B in the other operand dtype than A (FP8 with BF16)",
    "a_misaligned_stride": "A's non-unit stride one element past a 16-byte multiple",
    "b_misaligned_stride": "B's non-unit stride one element past a 16-byte multiple",
    "d_misaligned_stride": "D's row stride one element past a 16-byte multiple",
    "a_misaligned_base": "A starting one element into its storage (data pointer not 16-byte aligned)",
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
_MISSING = object()
_APIS = ("generic", "compat")
_SCALE_LAYOUTS = ("k_major", "mn_major")
_SIZES = ("small", "large")


# -- values ------------------------------------------------------------------------------------

@attrs.frozen
class Tolerance:
    """``calc_diff`` bound, and ``max |D - ref| <= max_abs_rel * max |ref|`` on written rows."""

    max_calc_diff: float
    max_abs_rel: float


@attrs.frozen
class Alignment:
    """The argument rules ``dgreg/call.py`` enforces, as data (see the op files' comments)."""

    stride_alignment_bytes: int
    base_alignment_bytes: int
    output_row_major: bool
    scale_block_k: int | None = None  # FP8 only
    scale_block_mn: int | None = None  # ops with the 1d2d recipe
    group_m_alignment: int | None = None  # m_contiguous
    group_k_multiple: int | None = None  # k_contiguous
    group_k_multiple_ue8m0: int | None = None  # k_contiguous FP8 with UE8M0 scales

    def group_k_step(self, recipe: Recipe) -> int:
        """The multiple every group's K must be for K-grouped GEMMs with ``recipe``."""
        if recipe == Recipe.UE8M0 and self.group_k_multiple_ue8m0:
            return self.group_k_multiple_ue8m0
        return self.group_k_multiple or 1


@attrs.frozen
class OpSpec:
    """One ``specs/ops/<op>.toml``: what an operation family accepts."""

    path: Path
    op: str
    description: str
    entry_point: str
    deepgemm_names: tuple[str, ...]
    grouping: Grouping
    ab_dtype: DType
    d_dtypes: tuple[DType, ...]
    layouts: tuple[Layout, ...]
    recipes: tuple[Recipe, ...]
    accumulate: bool
    alignment: Alignment
    tolerance: Tolerance

    @property
    def is_fp8(self) -> bool:
        return self.ab_dtype == DType.FP8_E4M3


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


# -- a strict reader over one TOML table ----------------------------------------------------------

def _kind(value: object) -> str:
    return {bool: "a boolean", int: "an integer", float: "a float", str: "a string",
            list: "an array", dict: "a table"}.get(type(value), type(value).__name__)


class _Table:
    """Typed access to one TOML table; keys never read are reported as unknown by :meth:`done`."""

    def __init__(self, path: Path, where: str, data: dict[str, Any]) -> None:
        self.path = path
        self.where = where
        self.data = data
        self.known: list[str] = []

    def key(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def fail(self, key: str, problem: str) -> SpecFileError:
        return SpecFileError(self.path, self.key(key), problem)

    def get(self, key: str, required: bool) -> Any:
        self.known.append(key)
        if key in self.data:
            return self.data[key]
        if required:
            raise self.fail(key, "missing (required)")
        return _MISSING

    def has(self, key: str) -> bool:
        return key in self.data

    def typed(self, key: str, types: tuple[type, ...], what: str, *, required: bool = True,
              default: Any = None) -> Any:
        value = self.get(key, required)
        if value is _MISSING:
            return default
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise self.fail(key, f"must be {what} (got {_kind(value)}: {value!r})")
        return value

    def string(self, key: str, **kw: Any) -> Any:
        return self.typed(key, (str,), "a string", **kw)

    def boolean(self, key: str, **kw: Any) -> Any:
        return self.typed(key, (bool,), "a boolean", **kw)

    def integer(self, key: str, minimum: int = 0, **kw: Any) -> Any:
        value = self.typed(key, (int,), "an integer", **kw)
        if value is not None and value < minimum:
            raise self.fail(key, f"must be an integer >= {minimum} (got {value})")
        return value

    def positive_number(self, key: str, **kw: Any) -> Any:
        value = self.typed(key, (int, float), "a number", **kw)
        if value is not None and not value > 0:
            raise self.fail(key, f"must be a positive number (got {value!r})")
        return None if value is None else float(value)

    def one(self, key: str, parse: Callable[[str], Any], *, required: bool = True,
            default: Any = None) -> Any:
        """A string parsed by ``parse`` (whose ValueError message becomes the problem)."""
        value = self.string(key, required=required)
        if value is None:
            return default
        try:
            return parse(value)
        except ValueError as exc:
            raise self.fail(key, str(exc)) from None

    def choices(self, key: str, parse: Callable[[Any], Any], what: str, *,
                default: tuple[Any, ...], scalar_types: tuple[type, ...] = (str,)) -> tuple[Any, ...]:
        """A value or an array of values (the case expands over each), each parsed by ``parse``."""
        value = self.get(key, False)
        if value is _MISSING:
            return default
        items = value if isinstance(value, list) else [value]
        if not items:
            raise self.fail(key, f"must be {what} or a non-empty array of them (got [])")
        out = []
        for i, item in enumerate(items):
            label = f"{key}[{i}]" if isinstance(value, list) else key
            if not isinstance(item, scalar_types) or (isinstance(item, bool) and bool not in scalar_types):
                raise self.fail(label, f"must be {what} (got {_kind(item)}: {item!r})")
            try:
                parsed = parse(item)
            except ValueError as exc:
                raise self.fail(label, str(exc)) from None
            if parsed in out:
                raise self.fail(label, f"repeats {item!r}")
            out.append(parsed)
        return tuple(out)

    def int_rows(self, key: str, width: int | None, what: str) -> tuple[tuple[int, ...], ...] | None:
        """An array of integer arrays: each of ``width`` items (or any non-zero length)."""
        value = self.get(key, False)
        if value is _MISSING:
            return None
        if not isinstance(value, list) or not value:
            raise self.fail(key, f"must be a non-empty array of {what} (got {_kind(value)}: {value!r})")
        rows = []
        for i, row in enumerate(value):
            if not isinstance(row, list) or (width is not None and len(row) != width) or not row:
                raise self.fail(f"{key}[{i}]", f"must be {what} (got {row!r})")
            for j, item in enumerate(row):
                if not isinstance(item, int) or isinstance(item, bool) or item < 0:
                    raise self.fail(f"{key}[{i}][{j}]",
                                    f"must be a non-negative integer (got {item!r})")
            rows.append(tuple(row))
        return tuple(rows)

    def int_list(self, key: str) -> tuple[int, ...] | None:
        value = self.get(key, False)
        if value is _MISSING:
            return None
        if not isinstance(value, list) or not value:
            raise self.fail(key, f"must be a non-empty array of integers (got {value!r})")
        for i, item in enumerate(value):
            if not isinstance(item, int) or isinstance(item, bool) or item < 0:
                raise self.fail(f"{key}[{i}]", f"must be a non-negative integer (got {item!r})")
        return tuple(value)

    def table(self, key: str, **kw: Any) -> _Table | None:
        value = self.typed(key, (dict,), "a table", **kw)
        return None if value is None else _Table(self.path, self.key(key), value)

    def done(self) -> None:
        unknown = [k for k in self.data if k not in self.known]
        if unknown:
            known = ", ".join(sorted(set(self.known)))
            raise self.fail(unknown[0], f"unknown key (known keys here: {known})")


def read_toml(path: Path) -> dict[str, Any]:
    """Parse ``path``; unreadable files and TOML syntax errors become :class:`SpecFileError`."""
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except OSError as exc:
        raise SpecFileError(path, "<file>", f"cannot be read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SpecFileError(path, "<syntax>", f"is not valid TOML: {exc}") from None


# -- op files ----------------------------------------------------------------------------------

def _parse_layout(value: str) -> Layout:
    try:
        return Layout(value.upper())
    except ValueError:
        raise ValueError(f"must be one of NT, NN, TN, TT (got {value!r})") from None


def _parse_dtype(value: str) -> DType:
    return DType.parse(value)


def _parse_recipe(value: str) -> Recipe:
    return Recipe.parse(value)


def _parse_grouping(value: str) -> Grouping:
    try:
        return Grouping(value)
    except ValueError:
        names = ", ".join(g.value for g in Grouping)
        raise ValueError(f"must be one of {names} (got {value!r})") from None


def _op_of(grouping: Grouping, dtype: DType) -> str:
    from dgreg.spec import op_name

    return op_name(dtype, grouping)


def _valid_combos(dtype: DType, grouping: Grouping) -> set[tuple[Layout, Recipe, DType]]:
    combos = set()
    for layout in Layout:
        for recipe in Recipe:
            for d in (DType.BF16, DType.FP32):
                try:
                    GemmSpec(dtype, dtype, d, layout, grouping, recipe)
                except UnsupportedSpecError:
                    continue
                combos.add((layout, recipe, d))
    return combos


def _load_op(path: Path) -> OpSpec:
    t = _Table(path, "", read_toml(path))
    op = t.string("op")
    if op not in OPS:
        raise t.fail("op", f"unknown operation {op!r}; dgreg.spec.OPS has: {', '.join(OPS)}")
    if path.stem != op:
        raise t.fail("op", f"{op!r} must live in {op}.toml (this file is {path.name})")
    description = t.string("description")
    entry_point = t.string("entry_point")
    names = t.choices("deepgemm_names", str, "a string", default=())
    grouping = t.one("grouping", _parse_grouping)
    ab_dtype = t.one("ab_dtype", _parse_dtype)
    d_dtypes = t.choices("d_dtypes", _parse_dtype, "a dtype name", default=())
    layouts = t.choices("layouts", _parse_layout, "a layout", default=())
    recipes = t.choices("recipes", _parse_recipe, "a recipe name", default=())
    for key, value in (("d_dtypes", d_dtypes), ("layouts", layouts), ("recipes", recipes),
                       ("deepgemm_names", names)):
        if not value:
            raise t.fail(key, "missing (required)")
    accumulate = t.boolean("accumulate")
    if _op_of(grouping, ab_dtype) != op:
        raise t.fail("grouping", f"{grouping.value} with {ab_dtype.value} operands is "
                                 f"{_op_of(grouping, ab_dtype)!r} in dgreg.spec, not {op!r}")
    # Agreement with dgreg.spec, both ways: what is declared exists, and what exists is declared.
    valid = _valid_combos(ab_dtype, grouping)
    for key, declared, pick in (("layouts", layouts, 0), ("recipes", recipes, 1),
                                ("d_dtypes", d_dtypes, 2)):
        allowed = {combo[pick] for combo in valid}
        for item in declared:
            if item not in allowed:
                reason = _spec_reason(ab_dtype, grouping, valid, pick, item)
                raise t.fail(key, f"{item.value!r} is not allowed for {op} by dgreg.spec: {reason}")
        missing = sorted(x.value for x in allowed - set(declared))
        if missing:
            raise t.fail(key, f"dgreg.spec allows {', '.join(missing)} for {op}; declare it")
    if accumulate:
        try:
            GemmSpec(ab_dtype, ab_dtype, d_dtypes[0], layouts[0], grouping, recipes[0], True)
        except UnsupportedSpecError as exc:
            raise t.fail("accumulate", f"dgreg.spec refuses accumulation for {op}: {exc}") from None
    alignment = _load_alignment(t, op, grouping, ab_dtype, recipes)
    tol = t.table("tolerance")
    tolerance = Tolerance(tol.positive_number("max_calc_diff"), tol.positive_number("max_abs_rel"))
    tol.done()
    t.done()
    return OpSpec(path, op, description, entry_point, names, grouping, ab_dtype, d_dtypes,
                  layouts, recipes, accumulate, alignment, tolerance)


def _spec_reason(dtype: DType, grouping: Grouping, valid: set[tuple[Layout, Recipe, DType]],
                 pick: int, item: Any) -> str:
    """dgreg.spec's own words for refusing ``item``: a valid combination with ``item`` swapped in."""
    combo = list(min(valid, key=lambda c: tuple(x.value for x in c)))
    combo[pick] = item
    layout, recipe, d = combo
    try:
        GemmSpec(dtype, dtype, d, layout, grouping, recipe)
    except UnsupportedSpecError as exc:
        return str(exc).split(": ", 1)[-1]
    return "no valid combination with it"


def _load_alignment(t: _Table, op: str, grouping: Grouping, dtype: DType,
                    recipes: Sequence[Recipe]) -> Alignment:
    a = t.table("alignment")
    fp8 = dtype == DType.FP8_E4M3
    values = {
        "stride_alignment_bytes": a.integer("stride_alignment_bytes", 1),
        "base_alignment_bytes": a.integer("base_alignment_bytes", 1),
        "output_row_major": a.boolean("output_row_major"),
    }
    # Keys that apply to some ops only: required where they apply, refused elsewhere.
    conditional = {
        "scale_block_k": fp8,
        "scale_block_mn": fp8 and Recipe.R1D2D in recipes,
        "group_m_alignment": grouping == Grouping.M_CONTIGUOUS,
        "group_k_multiple": grouping == Grouping.K_CONTIGUOUS,
        "group_k_multiple_ue8m0": grouping == Grouping.K_CONTIGUOUS and Recipe.UE8M0 in recipes,
    }
    for key, applies in conditional.items():
        if applies:
            values[key] = a.integer(key, 1)
        elif a.has(key):
            a.known.append(key)
            raise a.fail(key, f"does not apply to {op}")
    a.done()
    alignment = Alignment(**values)
    _check_alignment_against_code(a, alignment)
    return alignment


def _check_alignment_against_code(a: _Table, alignment: Alignment) -> None:
    """The numbers must be the ones the code enforces (imports torch through dgreg.layout)."""
    from dgreg import layout, reference

    expected = {
        # get_tma_aligned_size(1, 1): one byte rounded up to the TMA stride granule.
        "stride_alignment_bytes": layout.get_tma_aligned_size(1, 1),
        "base_alignment_bytes": layout.get_tma_aligned_size(1, 1),
        "output_row_major": True,
        "scale_block_k": SCALE_BLOCK,
        "scale_block_mn": SCALE_BLOCK,
        "group_m_alignment": reference.MK_ALIGNMENT,
        # FP32 scales: one block; packed UE8M0: four blocks per int32 word.
        "group_k_multiple": SCALE_BLOCK if alignment.scale_block_k else 1,
        "group_k_multiple_ue8m0": 4 * SCALE_BLOCK,
    }
    if layout.get_mk_alignment_for_contiguous_layout() != reference.MK_ALIGNMENT:
        raise a.fail("group_m_alignment", "dgreg.layout and dgreg.reference disagree on the "
                                          "contiguous-layout alignment")
    for key, want in expected.items():
        have = getattr(alignment, key)
        if have is not None and have != want:
            raise a.fail(key, f"is {have!r} but the code enforces {want!r}")


def _check_entry_points(path: Path, spec: OpSpec) -> None:
    import dgreg

    module, _, name = spec.entry_point.rpartition(".")
    if module != "dgreg" or name not in dgreg.__all__:
        raise SpecFileError(path, "entry_point",
                            f"{spec.entry_point!r} is not a public dgreg function")
    from dgreg import compat

    for i, name in enumerate(spec.deepgemm_names):
        if name not in compat.__all__ or name not in dgreg.__all__:
            raise SpecFileError(path, f"deepgemm_names[{i}]",
                                f"{name!r} is not a DeepGEMM-compatible name dgreg exports")


def load_ops(ops_dir: Path) -> dict[str, OpSpec]:
    """Every op file of ``ops_dir``, validated; every operation of ``dgreg.spec.OPS`` must have one."""
    ops_dir = Path(ops_dir)
    if not ops_dir.is_dir():
        raise SpecFileError(ops_dir, "<dir>", "is not a directory of op files")
    ops: dict[str, OpSpec] = {}
    for path in sorted(ops_dir.glob("*.toml")):
        spec = _load_op(path)
        _check_entry_points(path, spec)
        ops[spec.op] = spec
    missing = [op for op in OPS if op not in ops]
    if missing:
        raise SpecFileError(ops_dir, "op", f"no op file for {', '.join(missing)} "
                                           f"(every operation in dgreg.spec.OPS needs one)")
    return ops


# -- conformance case files --------------------------------------------------------------------

def _error_class(name: str) -> type[Exception] | None:
    cls = getattr(errors, name, None)
    if isinstance(cls, type) and issubclass(cls, errors.DgregError):
        return cls
    return None


def _parse_accumulate(value: Any) -> Accumulate:
    if isinstance(value, bool) or value == "inplace":
        return value
    raise ValueError(f"must be true, false or \"inplace\" (got {value!r})")


def _parse_word(words: Sequence[str]) -> Callable[[str], str]:
    def parse(value: str) -> str:
        if value not in words:
            raise ValueError(f"must be one of {', '.join(words)} (got {value!r})")
        return value

    return parse


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


def _shapes(t: _Table, op: OpSpec, negative: bool) -> tuple[Shape, ...]:
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
                         "missing (give shapes = [[m, n, k], ...] or m = [...] with nk = [[n, k], ...])")
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


def _group_sets(t: _Table) -> list[tuple[tuple[int, ...], bool]]:
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
        raise SpecFileError(path, f"case[{index}]", f"must be a table (got {_kind(data)})")
    t = _Table(path, f"case[{index}]", data)
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
    layouts = t.choices("layout", _parse_layout, "a layout", default=(default.layout,))
    recipes = t.choices("recipe", _parse_recipe, "a recipe name", default=(default.recipe,))
    out_dtypes = t.choices("out_dtype", _parse_dtype, "a dtype name", default=(default.d_dtype,))
    accumulate = t.choices("accumulate", _parse_accumulate, 'true, false or "inplace"',
                           default=(False,), scalar_types=(bool, str))
    apis = t.choices("api", _parse_word(_APIS), "an API name", default=("generic",))
    scale_layouts = t.choices("scale_layout", _parse_word(_SCALE_LAYOUTS), "a scale layout",
                              default=("k_major",))
    psums = t.choices("psum", lambda v: v, "a boolean", default=(False,), scalar_types=(bool,))
    if t.has("scale_layout") and not op.is_fp8:
        raise t.fail("scale_layout", f"{op.op} takes no scale factors")
    if t.has("psum") and op.grouping != Grouping.M_CONTIGUOUS:
        raise t.fail("psum", f"only M-contiguous grouped GEMMs have a prefix-sum layout, not {op.op}")
    if not negative:
        for key, chosen, allowed in (("layout", layouts, op.layouts), ("recipe", recipes, op.recipes),
                                     ("out_dtype", out_dtypes, op.d_dtypes)):
            for item in chosen:
                if item not in allowed:
                    raise t.fail(key, f"{item.value!r} is not allowed for {op.op} (op file: "
                                      f"{', '.join(x.value for x in allowed)}); a case expecting "
                                      f"that to fail needs expect_error")
        if any(acc is not False for acc in accumulate) and not op.accumulate:
            raise t.fail("accumulate", f"{op.op} takes no accumulator C (op file: accumulate = false)")
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
    size = t.one("size", _parse_word(_SIZES), required=False, default="small")
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
    t = _Table(path, "", read_toml(path))
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


def repo_specs_dir() -> Path | None:
    """``specs/`` of the checkout dgreg is imported from (editable installs), if there is one."""
    import dgreg

    specs = Path(dgreg.__file__).resolve().parent.parent / "specs"
    return specs if (specs / "ops").is_dir() else None


def iter_case_files(spec_dir: Path) -> Iterator[Path]:
    """The conformance files under ``spec_dir``, in a stable order."""
    yield from sorted(Path(spec_dir).rglob("*.toml"))
