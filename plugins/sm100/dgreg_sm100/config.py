"""The kernel configuration the SM100 heuristics choose: every field is a compile-time constant
of the generated kernel, except ``num_sms``, the persistent grid size."""

from __future__ import annotations

import attrs

from dgreg.spec import Layout

#: grouping of the spec -> the kernel's GROUPING switch
GROUPINGS = {"none": 0, "contiguous": 1, "masked": 2, "k_grouped": 3}
#: rows of the MMA's M side per CTA: the 128 lanes of tensor memory
MMA_ROWS = 128


def _choice(*allowed: object):
    def check(instance: object, attribute: attrs.Attribute, value: object) -> None:
        if value not in allowed:
            raise ValueError(f"'{attribute.name}' must be one of {allowed} (got {value!r})")

    return check


@attrs.frozen
class Sm100GemmConfig:
    """One kernel instance.

    ``block_m`` x ``block_n`` is one CTA's tile of D. Without ``swap_ab`` A rides as the MMA's
    M side (``block_m`` = 128) and ``block_n`` is the MMA's N; with ``swap_ab`` B does
    (``block_n`` = 128) and the few rows of A (``block_m``) are the MMA's N. ``cluster`` = 2
    pairs two CTAs on one MMA of M = 256 (their tiles are stacked along M and each loads half
    of B's tile).
    """

    dtype: str = attrs.field(validator=_choice("fp8", "bf16"))  # fp8: e4m3 with UE8M0 scales
    layout: str = attrs.field(validator=_choice("NT", "NN", "TN", "TT"))
    grouping: str = attrs.field(validator=_choice(*GROUPINGS))
    d_dtype: str = attrs.field(validator=_choice("bf16", "fp32"))
    block_m: int
    block_n: int
    swap_ab: bool
    cluster: int = attrs.field(validator=_choice(1, 2))
    stages: int
    num_sms: int

    @property
    def umma_n(self) -> int:
        """Columns of one TMEM accumulator: the MMA's N."""
        return self.block_m if self.swap_ab else self.block_n

    @property
    def epilogue_columns(self) -> int:
        """Accumulator columns the epilogue moves per step (as the kernel's EPI)."""
        return 32 if self.umma_n % 32 == 0 else 16

    @property
    def store_rows(self) -> int:
        """Rows of one warp's staged D tile: its 32 lanes, or with swap-AB one step's columns."""
        return self.epilogue_columns if self.swap_ab else 32

    @property
    def tile_m(self) -> int:
        """Rows of D one tile (one CTA, or the pair) covers."""
        return self.block_m * (1 if self.swap_ab else self.cluster)

    @property
    def a_k_major(self) -> bool:
        return Layout(self.layout).a_k_major

    @property
    def b_k_major(self) -> bool:
        return Layout(self.layout).b_k_major

    @property
    def threads(self) -> int:
        return 256  # producer, MMA, transposer, idle, 4 epilogue warps

    def kernel_text(self) -> str:
        """Everything that shapes the kernel binary (all fields but the grid size)."""
        extra = (", swap_ab" if self.swap_ab else "") + (", cluster=2" if self.cluster == 2 else "")
        group = "" if self.grouping == "none" else f", {self.grouping}"
        return (f"{self.dtype} {self.layout}{group} -> {self.d_dtype}, block_m={self.block_m}, "
                f"block_n={self.block_n}{extra}, stages={self.stages}")

    def __repr__(self) -> str:
        return f"Sm100GemmConfig({self.kernel_text()}, num_sms={self.num_sms})"
