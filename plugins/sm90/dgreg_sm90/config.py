"""The kernel configuration the SM90 heuristics choose (every field a compile-time constant
of the generated kernel, except ``num_sms``, the persistent grid size)."""

from __future__ import annotations

import attrs

#: grouping -> the kernel's GROUPED constant
GROUPINGS = {"": 0, "contiguous": 1, "masked": 2, "k": 3}
#: multicast -> the kernel's MULTICAST constant
MULTICASTS = {"": 0, "a": 1, "b": 2}


@attrs.frozen
class Sm90GemmConfig:
    # 64 (one math warpgroup, two with kpair), 128 (two), 256 (two, two 64-row sub-tiles each)
    block_m: int
    block_n: int  # a multiple of 8, at most 192 (FP8) or 256 (BF16)
    stages: int  # depth of the TMA ring
    num_sms: int  # CTAs of the persistent grid
    split_k: int = 1  # work units sharing one tile's K blocks (reduced through a workspace)
    dtype: str = "fp8"  # operands: "fp8" (e4m3, scaled) or "bf16"
    grouped: bool = False  # M-grouped (MoE): B per expert; rows tagged by expert, or masked
    masked: bool = False  # M-grouped masked: [G, M_max] rows, valid counts on the device
    k_grouped: bool = False  # K-grouped (MoE weight gradient): D [G, M, N] over K slices
    sfb_rows: bool = False  # FP8 B scales per row and 128 K (1d1d), else per 128x128 block
    out_f32: bool = False  # D in FP32, else BF16
    with_c: bool = False  # D = C + A @ B (C in BF16 or FP32, told at launch)
    # a K block's wgmma run on while the next is issued (BF16); FP8: while the previous block
    # is promoted (two partial accumulators; one sub-tile per warpgroup, 1d2d, block_n <= 128)
    inflight: bool = False
    # 2-CTA cluster sharing one operand tile through TMA multicast: "a" (the pair's tiles share
    # rows: adjacent n-blocks), "b" (they share columns: adjacent m-blocks), or "" (no cluster)
    multicast: str = ""
    # FP8 block_m 64: two math warpgroups share the tile and take its K blocks in turn, one's
    # wgmma overlapping the other's wait and promotion (dense, no multicast)
    kpair: bool = False

    def __attrs_post_init__(self) -> None:
        if self.sfb_rows and self.dtype != "fp8":
            raise ValueError("sfb_rows (per-row B scales) is an FP8 recipe")
        if self.k_grouped and (self.grouped or not self.out_f32):
            raise ValueError("a K-grouped config is not M-grouped and writes FP32")
        if self.inflight and self.stages < 3:
            raise ValueError("inflight needs a ring of 3 or more stages")
        if self.inflight and self.dtype == "fp8" and (self.m_sub != 1 or self.kpair or
                                                      self.sfb_rows or self.block_n > 128):
            raise ValueError("FP8 inflight needs one 64-row sub-tile per math warpgroup "
                             "(block_m 64 or 128), 1d2d scales, no kpair and block_n <= 128 "
                             "(two partial accumulators)")
        if self.multicast not in MULTICASTS:
            raise ValueError(f"multicast must be one of {sorted(MULTICASTS)} (got {self.multicast!r})")
        if self.multicast == "b" and (self.grouped or self.k_grouped):
            raise ValueError("grouped kernels multicast A only (the pair must share its rows)")
        if self.multicast == "b" and self.block_n % 16:
            raise ValueError("multicast of B needs block_n a multiple of 16 (two halves of "
                             "whole 8-row swizzle atoms)")
        if self.kpair and (self.dtype != "fp8" or self.block_m != 64 or self.grouping or
                           self.multicast):
            raise ValueError("kpair needs FP8, block_m 64, a dense GEMM and no multicast")
        if self.multicast and self.num_sms % 2:
            raise ValueError("a grid of 2-CTA clusters has an even number of CTAs")

    @property
    def grouping(self) -> str:
        if self.k_grouped:
            return "k"
        return ("masked" if self.masked else "contiguous") if self.grouped else ""

    @property
    def cluster(self) -> int:
        """CTAs per cluster: 2 with multicast, else 1."""
        return 2 if self.multicast else 1

    @property
    def num_math_wg(self) -> int:
        return 1 if self.block_m == 64 and not self.kpair else 2

    @property
    def m_sub(self) -> int:
        return 1 if self.kpair else self.block_m // (64 * self.num_math_wg)

    @property
    def epilogue_rows(self) -> int:
        """Rows of the tile that one group of its writers stages and TMA-stores (the kernel's
        EPI_ROWS, and D's TMA box): with two math warpgroups on an unsplit tile each writes its
        own, so that neither waits for the other at the tile's end; else all. Measured on an
        H200 (benchmarks/NOTES.md, "Each math warpgroup stores its own rows" and "M-grouped K
        loops as lean as the dense one"): dense FP8 at M = 4096 2.2-5.8% faster, masked level
        to +3.2%, BF16 and M <= 128 level, M-grouped contiguous 2.0-2.6% (once its epilogue's
        row check no longer made its K loop slower)."""
        if self.num_math_wg == 2 and not self.kpair and self.split_k == 1:
            return 64 * self.m_sub
        return self.block_m

    @property
    def threads(self) -> int:
        return 128 * (self.num_math_wg + 1)

    @property
    def epilogue(self) -> str:
        """How D is written (as the kernel decides): "tma" (staged in shared memory,
        TMA-stored, overlapped with the next tile), "mixed" (M-grouped: the TMA store for tiles
        whose rows are all written, the others from the staging by 16-byte stores) or
        "direct" (FP32 D or a C: from registers). A BF16 D whose N is not a multiple of 8 is
        written from the staging by the threads (a launch argument, not the config)."""
        if self.out_f32 or self.with_c:
            return "direct"
        return "mixed" if self.grouped else "tma"

    def __repr__(self) -> str:
        extra = f", split_k={self.split_k}" if self.split_k > 1 else ""
        extra += {"": "", "contiguous": ", grouped", "masked": ", masked",
                  "k": ", k_grouped"}[self.grouping]
        extra += ", sfb_rows" if self.sfb_rows else ""
        extra += ", out_f32" if self.out_f32 else ""
        extra += ", with_c" if self.with_c else ""
        extra += ", inflight" if self.inflight else ""
        extra += f", multicast={self.multicast}" if self.multicast else ""
        extra += ", kpair" if self.kpair else ""
        return (f"Sm90GemmConfig({self.dtype}, block_m={self.block_m}, block_n={self.block_n}, "
                f"stages={self.stages}, num_sms={self.num_sms}{extra})")


def split_firsts(block_n: int) -> list[int]:
    """The values the kernel's ``first`` can take for tiles ``block_n`` wide: how many of a
    tile's 8-column chunks lie in its first 128-column B scale block, over every tile start
    (a multiple of block_n). One value when block_n divides 128 or 128 divides it."""
    return sorted({min(block_n, 128 - i * block_n % 128) // 8 for i in range(128)}, reverse=True)
