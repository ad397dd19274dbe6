"""What a GEMM is: :class:`GemmSpec` (the operation) and :class:`Problem` (its sizes).

Both are frozen, validated ``attrs`` values with short reprs, because they end up in
``explain`` output, cache keys and test ids. Nothing here imports torch.
"""

from __future__ import annotations

import enum
from typing import Any

import attrs

from dgreg.errors import InvalidArgumentError, UnsupportedSpecError

__all__ = [
    "OPS", "SCALE_BLOCK", "DType", "GemmSpec", "Grouping", "Layout", "Problem", "Recipe", "spec_for",
]

#: Granularity of FP32 scale factors along K (and along MN for 128x128 block scales).
SCALE_BLOCK = 128


class DType(str, enum.Enum):
    """Element types, named as torch names them (``torch.<value>``)."""

    FP8_E4M3 = "float8_e4m3fn"
    BF16 = "bfloat16"
    FP32 = "float32"

    @property
    def short(self) -> str:
        return {"float8_e4m3fn": "fp8", "bfloat16": "bf16", "float32": "fp32"}[self.value]

    @property
    def itemsize(self) -> int:
        return {"float8_e4m3fn": 1, "bfloat16": 2, "float32": 4}[self.value]

    @classmethod
    def parse(cls, value: object) -> DType:
        """Accept a DType, a torch dtype, or a name (``"bf16"``, ``"bfloat16"``, ``"fp8"``...)."""
        if isinstance(value, DType):
            return value
        text = str(value).removeprefix("torch.").lower()
        aliases = {"fp8": "float8_e4m3fn", "e4m3": "float8_e4m3fn", "bf16": "bfloat16",
                   "fp32": "float32", "float": "float32"}
        text = aliases.get(text, text)
        try:
            return cls(text)
        except ValueError:
            names = ", ".join(d.value for d in cls)
            raise InvalidArgumentError("dtype", f"one of {names}", repr(value)) from None


class Layout(str, enum.Enum):
    """Operand major-ness, DeepGEMM's naming: first letter A, second letter B.

    A: ``N`` = A is ``[M, K]`` K-major; ``T`` = A is MN-major (passed to the ``t*`` entry
    points as ``[K, M]``). B: ``T`` = B is ``[N, K]`` K-major; ``N`` = B is MN-major (passed to
    the ``*n`` entry points as ``[K, N]``). So ``NT`` computes ``A @ B.T`` on row-major inputs.
    """

    NT = "NT"
    NN = "NN"
    TN = "TN"
    TT = "TT"

    @property
    def a_k_major(self) -> bool:
        return self.value[0] == "N"

    @property
    def b_k_major(self) -> bool:
        return self.value[1] == "T"

    @classmethod
    def from_majors(cls, a_k_major: bool, b_k_major: bool) -> Layout:
        return cls(("N" if a_k_major else "T") + ("T" if b_k_major else "N"))


class Grouping(str, enum.Enum):
    NONE = "none"
    M_CONTIGUOUS = "m_contiguous"  # A [M_sum, K], B [G, N, K], per-row group ids (-1 = padding)
    M_MASKED = "m_masked"  # A [G, M_max, K], B [G, N, K], masked_m [G] on the device
    K_CONTIGUOUS = "k_contiguous"  # A [sum K, M], B [sum K, N], D [G, M, N] in FP32


class Recipe(str, enum.Enum):
    """How FP8 operands are scaled."""

    NONE = "none"  # BF16: no scale factors
    R1D2D = "1d2d"  # A: FP32 per row x 128-K; B: FP32 per 128x128 block
    R1D1D = "1d1d"  # A and B: FP32 per row x 128-K
    UE8M0 = "ue8m0"  # A and B: power-of-two scales per row x 128-K, 4 packed per int32

    @classmethod
    def parse(cls, value: object) -> Recipe:
        """Accept a Recipe, a name (``"1D2D"``), or DeepGEMM's ``(gran_mn_a, gran_mn_b, gran_k)``."""
        if isinstance(value, Recipe):
            return value
        if isinstance(value, tuple):
            table = {(1, 128, 128): cls.R1D2D, (1, 1, 128): cls.R1D1D}
            if value in table:
                return table[value]
            raise InvalidArgumentError("recipe", "(1, 128, 128) or (1, 1, 128)", repr(value))
        text = str(value).lower()
        for member in cls:
            if text in (member.value, member.name.lower()):
                return member
        names = ", ".join(m.value for m in cls)
        raise InvalidArgumentError("recipe", f"one of {names}", repr(value))


def _enum_converter(enum_type: type[enum.Enum]):
    """A converter for enums without their own ``parse`` (DType and Recipe have one)."""

    def convert(value: Any) -> Any:
        if isinstance(value, enum_type):
            return value
        try:
            return enum_type(str(value).upper() if enum_type is Layout else str(value).lower())
        except ValueError:
            names = ", ".join(m.value for m in enum_type)
            raise InvalidArgumentError(enum_type.__name__.lower(), f"one of {names}",
                                       repr(value)) from None

    return convert


_FP8 = DType.FP8_E4M3


def op_name(dtype: DType, grouping: Grouping) -> str:
    """``fp8_gemm``, ``m_grouped_bf16_gemm_contiguous``, ``k_grouped_fp8_gemm_contiguous``..."""
    base = f"{dtype.short}_gemm"
    return {
        Grouping.NONE: base,
        Grouping.M_CONTIGUOUS: f"m_grouped_{base}_contiguous",
        Grouping.M_MASKED: f"m_grouped_{base}_masked",
        Grouping.K_CONTIGUOUS: f"k_grouped_{base}_contiguous",
    }[grouping]


@attrs.frozen(repr=False)
class GemmSpec:
    """The operation ``D = C + op(A) @ op(B)``, independent of sizes.

    Construct with strings or enums: ``GemmSpec("fp8", "fp8", "bf16", recipe="1d2d")``.
    Combinations dgreg does not define raise :class:`UnsupportedSpecError` naming the rule.
    """

    a_dtype: DType = attrs.field(converter=DType.parse)
    b_dtype: DType = attrs.field(converter=DType.parse)
    d_dtype: DType = attrs.field(default=DType.BF16, converter=DType.parse)
    layout: Layout = attrs.field(default=Layout.NT, converter=_enum_converter(Layout))
    grouping: Grouping = attrs.field(default=Grouping.NONE, converter=_enum_converter(Grouping))
    recipe: Recipe = attrs.field(default=Recipe.NONE, converter=Recipe.parse)
    accumulate: bool = attrs.field(default=False, validator=attrs.validators.instance_of(bool))

    def __attrs_post_init__(self) -> None:
        problem = self._rule_violation()
        if problem is not None:
            raise UnsupportedSpecError(f"{self!r} is not a dgreg operation: {problem}")

    def _rule_violation(self) -> str | None:
        if self.a_dtype != self.b_dtype:
            return f"A and B must share a dtype (got {self.a_dtype.value} and {self.b_dtype.value})"
        if self.a_dtype not in (_FP8, DType.BF16):
            return f"A and B must be float8_e4m3fn or bfloat16 (got {self.a_dtype.value})"
        if self.d_dtype not in (DType.BF16, DType.FP32):
            return f"D must be bfloat16 or float32 (got {self.d_dtype.value})"
        if self.a_dtype == _FP8 and self.recipe == Recipe.NONE:
            return "FP8 operands need a scaling recipe (1d2d, 1d1d or ue8m0)"
        if self.a_dtype == DType.BF16 and self.recipe != Recipe.NONE:
            return f"BF16 operands take no scaling recipe (got {self.recipe.value})"
        if self.grouping in (Grouping.M_CONTIGUOUS, Grouping.M_MASKED) and not self.layout.a_k_major:
            return f"M-grouped GEMMs need a K-major A (layout NT or NN, got {self.layout.value})"
        if self.grouping == Grouping.M_MASKED and self.layout != Layout.NT:
            return f"masked M-grouped GEMMs take layout NT (got {self.layout.value})"
        if self.grouping == Grouping.K_CONTIGUOUS:
            if self.layout != Layout.TN:
                return f"K-grouped GEMMs take layout TN (got {self.layout.value})"
            if self.d_dtype != DType.FP32:
                return f"K-grouped GEMMs write float32 D (got {self.d_dtype.value})"
            if self.recipe == Recipe.R1D2D:
                return "K-grouped FP8 GEMMs scale per row on both sides (recipe 1d1d or ue8m0)"
        return None

    @property
    def is_fp8(self) -> bool:
        return self.a_dtype == _FP8

    @property
    def op(self) -> str:
        """The operation family name, as in ``specs/ops`` (``fp8_gemm``, ``m_grouped_bf16_gemm_masked``)."""
        return op_name(self.a_dtype, self.grouping)

    @property
    def name(self) -> str:
        """A short stable id: ``fp8_gemm.nt.1d2d.bf16`` (``+c`` when accumulating)."""
        parts = [self.op, self.layout.value.lower()]
        if self.recipe != Recipe.NONE:
            parts.append(self.recipe.value)
        parts.append(self.d_dtype.short + ("+c" if self.accumulate else ""))
        return ".".join(parts)

    def __repr__(self) -> str:
        return f"GemmSpec({self.name})"


def _non_negative(instance: object, attribute: attrs.Attribute, value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise InvalidArgumentError(attribute.name, "a non-negative int", repr(value))


def _positive(instance: object, attribute: attrs.Attribute, value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise InvalidArgumentError(attribute.name, "a positive int", repr(value))


def _optional_positive(instance: object, attribute: attrs.Attribute, value: object) -> None:
    if value is not None:
        _positive(instance, attribute, value)


def _group_ks(instance: object, attribute: attrs.Attribute, value: object) -> None:
    if value is None:
        return
    if not isinstance(value, tuple) or not all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value):
        raise InvalidArgumentError("group_ks", "a tuple of non-negative ints", repr(value))


@attrs.frozen(repr=False)
class Problem:
    """The sizes of one call.

    ``m`` is the rows of A (``M_sum`` for contiguous M-grouping, ``M_max`` per group for masked),
    ``k`` the total K (the sum over groups for K-grouping). ``expected_m`` is a heuristic hint
    for grouped calls whose real sizes live on the GPU; ``group_ks`` the per-group K, known on
    the host for K-grouped calls.
    """

    m: int = attrs.field(validator=_non_negative)
    n: int = attrs.field(validator=_non_negative)
    k: int = attrs.field(validator=_non_negative)
    groups: int = attrs.field(default=1, validator=_positive)
    expected_m: int | None = attrs.field(default=None, validator=_optional_positive)
    group_ks: tuple[int, ...] | None = attrs.field(default=None, validator=_group_ks)

    @property
    def is_empty(self) -> bool:
        return self.m == 0 or self.n == 0

    def __repr__(self) -> str:
        text = f"m{self.m}n{self.n}k{self.k}"
        if self.groups != 1:
            text = f"g{self.groups}" + text
        if self.expected_m is not None:
            text += f"~m{self.expected_m}"
        return text


_OPS: dict[str, tuple[DType, Grouping]] = {
    op_name(dtype, grouping): (dtype, grouping)
    for dtype in (_FP8, DType.BF16) for grouping in Grouping
}

#: Every operation family name (``fp8_gemm``, ``m_grouped_bf16_gemm_masked``, ...).
OPS: tuple[str, ...] = tuple(_OPS)


def spec_for(op: str, *, layout: str | Layout | None = None, recipe: str | Recipe | None = None,
             d_dtype: str | DType | None = None, accumulate: bool = False) -> GemmSpec:
    """Build a spec from an operation name, with that family's defaults for what is not given.

    Defaults: layout NT (TN for K-grouped), recipe 1d2d for FP8 (1d1d for K-grouped), D in
    bfloat16 (float32 for K-grouped).
    """
    if op not in _OPS:
        raise UnsupportedSpecError(f"unknown operation {op!r}; known: {', '.join(OPS)}")
    dtype, grouping = _OPS[op]
    k_grouped = grouping == Grouping.K_CONTIGUOUS
    if layout is None:
        layout = Layout.TN if k_grouped else Layout.NT
    if recipe is None:
        recipe = Recipe.NONE if dtype == DType.BF16 else (Recipe.R1D1D if k_grouped else Recipe.R1D2D)
    if d_dtype is None:
        d_dtype = DType.FP32 if k_grouped else DType.BF16
    return GemmSpec(dtype, dtype, d_dtype, layout, grouping, recipe, accumulate)
