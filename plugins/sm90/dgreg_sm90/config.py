"""The kernel configuration the SM90 heuristics choose (every field a compile-time constant
of the generated kernel, except ``num_sms``, the persistent grid size)."""

from __future__ import annotations

import attrs


@attrs.frozen
class Sm90GemmConfig:
    block_m: int  # 64 (one math warpgroup), 128 (two), 256 (two, two 64-row sub-tiles each)
    block_n: int  # a multiple of 8, at most 160
    stages: int  # depth of the TMA ring
    num_sms: int  # CTAs of the persistent grid
    split_k: int = 1  # work units sharing one tile's K blocks (reduced through a workspace)
    dtype: str = "fp8"  # operands: "fp8" (e4m3, 1d2d scales) or "bf16"
    grouped: bool = False  # M-grouped (MoE): B per expert; rows tagged by expert, or masked
    masked: bool = False  # M-grouped masked: [G, M_max] rows, valid counts on the device

    @property
    def num_math_wg(self) -> int:
        return 1 if self.block_m == 64 else 2

    @property
    def m_sub(self) -> int:
        return self.block_m // (64 * self.num_math_wg)

    @property
    def threads(self) -> int:
        return 128 * (self.num_math_wg + 1)

    def __repr__(self) -> str:
        split = f", split_k={self.split_k}" if self.split_k > 1 else ""
        split += (", masked" if self.masked else ", grouped") if self.grouped else ""
        return (f"Sm90GemmConfig({self.dtype}, block_m={self.block_m}, block_n={self.block_n}, "
                f"stages={self.stages}, num_sms={self.num_sms}{split})")
