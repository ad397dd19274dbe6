"""The torch reference: every spec, on CPU or GPU, by dequantising and multiplying in float.

It is both the oracle of the tests (``compute(call, torch.float64)``) and the last-resort
fallback kernel (``run``), registered through the same hooks as any other plugin. It also
checks what kernels cannot check without a device sync: the *values* of group layouts.

Rows a grouped GEMM does not compute (padding rows marked -1, rows past ``masked_m``) are
left untouched in ``d``.
"""

from __future__ import annotations

import torch

from dgreg.call import GemmCall
from dgreg.errors import InvalidArgumentError
from dgreg.hookspecs import API_VERSION, hookimpl
from dgreg.kernel import Candidate
from dgreg.layout import (
    align,
    ceil_div,
    get_mk_alignment_for_contiguous_layout,
    unpack_ue8m0_from_int,
)
from dgreg.spec import SCALE_BLOCK, Grouping, Recipe

__all__ = ["ReferencePlugin", "compute", "dequantize", "dequantize_1d2d", "run"]

# rows of one M block of the contiguous grouped layout
MK_ALIGNMENT = get_mk_alignment_for_contiguous_layout()


def _expand(sf: torch.Tensor, rows: int, k: int, row_block: int) -> torch.Tensor:
    """Broadcast per-block scales [..., RB, KB] to elements [..., rows, k]."""
    sf = sf.repeat_interleave(SCALE_BLOCK, dim=-1)[..., :k]
    if row_block > 1:
        sf = sf.repeat_interleave(row_block, dim=-2)
    return sf[..., :rows, :]


def dequantize(x: torch.Tensor, sf: torch.Tensor | None, recipe: Recipe, *, block_rows: bool,
               dtype: torch.dtype) -> torch.Tensor:
    """``x`` [..., R, K] times its scales, in ``dtype``."""
    out = x.to(dtype)
    if sf is None or recipe == Recipe.NONE:
        return out
    rows, k = x.shape[-2], x.shape[-1]
    kb = ceil_div(k, SCALE_BLOCK)
    values = unpack_ue8m0_from_int(sf, kb) if recipe == Recipe.UE8M0 else sf
    scale = _expand(values.to(dtype), rows, k, SCALE_BLOCK if block_rows else 1)
    return out * scale


def dequantize_1d2d(a: torch.Tensor, a_scale: torch.Tensor, b: torch.Tensor,
                    b_scale: torch.Tensor, dtype: torch.dtype = torch.float64
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """FP8 operands of the 1d2d recipe in ``dtype``: ``a`` [..., M, K] with per-row 128-K
    scales, ``b`` [..., N, K] with 128 x 128 block scales (for oracles and benchmarks)."""
    return (dequantize(a, a_scale, Recipe.R1D2D, block_rows=False, dtype=dtype),
            dequantize(b, b_scale, Recipe.R1D2D, block_rows=True, dtype=dtype))


def _contiguous_row_groups(call: GemmCall) -> torch.Tensor:
    """Per-row group id (-1 = not computed), validated."""
    layout = call.grouped_layout
    m, groups = call.problem.m, call.problem.groups
    if call.use_psum_layout:
        ends = layout.to("cpu", torch.int64)
        ids = torch.full((m,), -1, dtype=torch.int64)
        start = 0
        for g, end in enumerate(ends.tolist()):
            if end < start or end > m:
                raise InvalidArgumentError(
                    "grouped_layout", f"end offsets within [0, {m}], each at least the previous "
                                      f"end rounded up to {MK_ALIGNMENT} (where the group starts)",
                    f"end {end} for group {g} starting at {start}")
            ids[start:end] = g
            start = align(end, MK_ALIGNMENT)
        return ids.to(layout.device)
    ids = layout.to(torch.int64)
    if m and (int(ids.min()) < -1 or int(ids.max()) >= groups):
        raise InvalidArgumentError("grouped_layout", f"group ids in [-1, {groups - 1}]",
                                   f"values from {int(ids.min())} to {int(ids.max())}")
    blocks = torch.nn.functional.pad(ids, (0, (-m) % MK_ALIGNMENT), value=-1).view(-1, MK_ALIGNMENT)
    top = blocks.max(dim=1).values.unsqueeze(1)
    valid = blocks >= 0
    # within a block, a group's rows come first and its -1 padding after them
    late_start = (valid[:, 1:] & ~valid[:, :-1]).any(dim=1)
    mixed = (valid & (blocks != top)).any(dim=1) | late_start
    if bool(mixed.any()):
        first = int(mixed.nonzero()[0, 0]) * MK_ALIGNMENT
        raise InvalidArgumentError(
            "grouped_layout", f"one group per {MK_ALIGNMENT}-row block, starting at the block's "
                              f"first row (pad each group to a multiple of {MK_ALIGNMENT} rows "
                              f"with -1)",
            f"several groups, or a group after padding, in rows {first}..{first + MK_ALIGNMENT - 1}")
    return ids


def compute(call: GemmCall, dtype: torch.dtype = torch.float32
            ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The exact result in ``dtype`` and a boolean mask of the rows the op writes (None: all).

    The result has D's shape; rows outside the mask hold zeros.
    """
    spec, p = call.spec, call.problem
    block_b = spec.recipe == Recipe.R1D2D
    a = dequantize(call.a, call.a_scale, spec.recipe, block_rows=False, dtype=dtype)
    b = dequantize(call.b, call.b_scale, spec.recipe, block_rows=block_b, dtype=dtype)
    c = call.c.to(dtype) if call.c is not None else None
    written = None
    if spec.grouping == Grouping.NONE:
        out = a @ b.transpose(-1, -2)
    elif spec.grouping == Grouping.M_MASKED:
        counts = call.grouped_layout.to(torch.int64)
        if p.groups and (int(counts.min()) < 0 or int(counts.max()) > p.m):
            raise InvalidArgumentError("masked_m", f"valid-row counts in [0, {p.m}]",
                                       f"values from {int(counts.min())} to {int(counts.max())}")
        rows = torch.arange(p.m, device=counts.device)
        written = (rows.unsqueeze(0) < counts.unsqueeze(1)).unsqueeze(-1)
        out = torch.where(written, a @ b.transpose(-1, -2), 0.0)
    elif spec.grouping == Grouping.M_CONTIGUOUS:
        ids = _contiguous_row_groups(call)
        out = torch.zeros(p.m, p.n, dtype=dtype, device=a.device)
        for g in range(p.groups):
            rows = (ids == g).nonzero().flatten()
            if rows.numel():
                out[rows] = a[rows] @ b[g].transpose(0, 1)
        written = (ids >= 0).unsqueeze(-1)
    else:  # K_CONTIGUOUS
        ks = p.group_ks
        if call.grouped_layout is not None and call.grouped_layout.tolist() != list(ks):
            raise InvalidArgumentError("ks_tensor", f"the same sizes as 'ks' ({list(ks)})",
                                       f"{call.grouped_layout.tolist()}")
        out = torch.zeros(p.groups, p.m, p.n, dtype=dtype, device=a.device)
        start = 0
        for g, kg in enumerate(ks):
            if kg:
                out[g] = a[:, start:start + kg] @ b[:, start:start + kg].transpose(0, 1)
            start += kg
    if c is not None:
        out = out + (c if written is None else torch.where(written, c, 0.0))
    return out, written


def run(call: GemmCall) -> None:
    """Compute ``call`` in float32 and write it into ``call.d`` (only the rows the op writes)."""
    result, written = compute(call, torch.float32)
    result = result.to(call.d.dtype)
    if written is None:
        call.d.copy_(result)
    else:
        call.d.copy_(torch.where(written, result, call.d))


def _supports_everything(spec: object, device: object) -> None:
    return None


class ReferencePlugin:
    """The built-in plugin that offers the torch reference on every device."""

    @hookimpl
    def dgreg_api_version(self) -> int:
        return API_VERSION

    @hookimpl
    def dgreg_plugin_info(self) -> dict[str, object]:
        return {"archs": ["*"],
                "description": "torch reference: every spec on CPU or GPU, float32 accumulation"}

    @hookimpl
    def dgreg_register_kernels(self, register, device) -> None:
        register(Candidate(
            "reference.torch", supports=_supports_everything, run=run, priority=-1000,
            needs_cuda=False, fallback=True,
            description="dequantise to float32 and multiply with torch (slow, exact)"))
