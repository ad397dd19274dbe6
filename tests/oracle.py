"""An independent float64 oracle for GEMM results, shared by test_reference and test_call.

It never calls ``dgreg.reference`` or ``dgreg.layout``: it dequantises with explicit
per-element index arithmetic (and decodes packed UE8M0 words byte by byte) and multiplies in
float64.
"""

from __future__ import annotations

import torch


def k_blocks(k: int) -> int:
    """128-wide K blocks (scale-factor columns) of a K extent."""
    return -(-k // 128)


def _decode_ue8m0(words: torch.Tensor, kb: int) -> torch.Tensor:
    """Packed int32 [..., R, W] to float64 [..., R, kb]: byte j of word w is K-block 4w + j."""
    out = torch.empty((*words.shape[:-1], kb), dtype=torch.float64)
    w64 = words.to(torch.int64) & 0xFFFFFFFF
    for blk in range(kb):
        code = (w64[..., blk // 4] >> (8 * (blk % 4))) & 0xFF
        out[..., blk] = torch.pow(2.0, code.to(torch.float64) - 127.0)
    return out


def dequant(x: torch.Tensor, sf: torch.Tensor | None, recipe: str, *, block_rows: bool = False
            ) -> torch.Tensor:
    """Logical [..., R, K] operand times its scales, in float64, by explicit indexing."""
    xd = x.to(torch.float64)
    if sf is None:
        return xd
    rows, k = x.shape[-2], x.shape[-1]
    values = _decode_ue8m0(sf, k_blocks(k)) if recipe == "ue8m0" else sf.to(torch.float64)
    kidx = torch.arange(k) // 128
    ridx = torch.arange(rows) // (128 if block_rows else 1)
    scale = values[..., ridx, :][..., :, kidx]
    return xd * scale


def oracle_dense(a: torch.Tensor, b: torch.Tensor, sa=None, sb=None, recipe: str = "none",
                 c: torch.Tensor | None = None) -> torch.Tensor:
    """D = C + A @ B^T for logical A [M, K], B [N, K] and their logical scales."""
    ad = dequant(a, sa, recipe)
    bd = dequant(b, sb, recipe, block_rows=recipe == "1d2d")
    m, n = a.shape[0], b.shape[0]
    out = torch.zeros(m, n, dtype=torch.float64)
    if a.shape[1]:
        out = torch.einsum("mk,nk->mn", ad, bd)
    if c is not None:
        out = out + c.to(torch.float64)
    return out


def magnitude(a, b, sa=None, sb=None, recipe: str = "none", c=None) -> torch.Tensor:
    """sum_k |A||B| (+|C|): the scale of float32 accumulation error for each output."""
    ad = dequant(a, sa, recipe).abs()
    bd = dequant(b, sb, recipe, block_rows=recipe == "1d2d").abs()
    out = ad @ bd.transpose(-1, -2)
    if c is not None:
        out = out + c.to(torch.float64).abs()
    return out
