"""The op files, ``specs/ops/<op>.toml``: what each operation family accepts, checked
against the code.

:mod:`dgreg.spec` is the single source of truth for which dtype / layout / recipe
combinations exist: an op file that declares a combination dgreg does not define, or misses
one it does, is an error. So is an alignment number other than the one ``dgreg/call.py``
enforces, or an entry point or DeepGEMM name that dgreg does not export (those two checks
import torch, through :mod:`dgreg.layout` and :mod:`dgreg.compat`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs

from dgreg.conformance.strict_toml import Table, read_toml
from dgreg.errors import SpecFileError, UnsupportedSpecError
from dgreg.spec import OPS, SCALE_BLOCK, DType, GemmSpec, Grouping, Layout, Recipe, op_name

__all__ = ["Alignment", "OpSpec", "Tolerance", "load_ops", "parse_layout"]


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


def parse_layout(value: str) -> Layout:
    """A layout name, any case (``"nt"``, ``"TN"``...)."""
    try:
        return Layout(value.upper())
    except ValueError:
        raise ValueError(f"must be one of NT, NN, TN, TT (got {value!r})") from None


def _parse_grouping(value: str) -> Grouping:
    try:
        return Grouping(value)
    except ValueError:
        names = ", ".join(g.value for g in Grouping)
        raise ValueError(f"must be one of {names} (got {value!r})") from None


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
    t = Table(path, "", read_toml(path))
    op = t.string("op")
    if op not in OPS:
        raise t.fail("op", f"unknown operation {op!r}; dgreg.spec.OPS has: {', '.join(OPS)}")
    if path.stem != op:
        raise t.fail("op", f"{op!r} must live in {op}.toml (this file is {path.name})")
    description = t.string("description")
    entry_point = t.string("entry_point")
    names = t.choices("deepgemm_names", str, "a string", default=())
    grouping = t.one("grouping", _parse_grouping)
    ab_dtype = t.one("ab_dtype", DType.parse)
    d_dtypes = t.choices("d_dtypes", DType.parse, "a dtype name", default=())
    layouts = t.choices("layouts", parse_layout, "a layout", default=())
    recipes = t.choices("recipes", Recipe.parse, "a recipe name", default=())
    for key, value in (("d_dtypes", d_dtypes), ("layouts", layouts), ("recipes", recipes),
                       ("deepgemm_names", names)):
        if not value:
            raise t.fail(key, "missing (required)")
    accumulate = t.boolean("accumulate")
    if op_name(ab_dtype, grouping) != op:
        raise t.fail("grouping", f"{grouping.value} with {ab_dtype.value} operands is "
                                 f"{op_name(ab_dtype, grouping)!r} in dgreg.spec, not {op!r}")
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
    """dgreg.spec's own words for refusing ``item``: a valid combination with ``item``
    swapped in."""
    combo = list(min(valid, key=lambda c: tuple(x.value for x in c)))
    combo[pick] = item
    layout, recipe, d = combo
    try:
        GemmSpec(dtype, dtype, d, layout, grouping, recipe)
    except UnsupportedSpecError as exc:
        return str(exc).split(": ", 1)[-1]
    return "no valid combination with it"


def _load_alignment(t: Table, op: str, grouping: Grouping, dtype: DType,
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


def _check_alignment_against_code(a: Table, alignment: Alignment) -> None:
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
    """Every op file of ``ops_dir``, validated; every operation of ``dgreg.spec.OPS`` must
    have one."""
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
