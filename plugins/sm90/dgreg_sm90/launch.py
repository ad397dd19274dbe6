"""Kernel arguments for one call of the SM90 FP8 kernel (runs on the hot path: keep it lean)."""

from __future__ import annotations

import ctypes

from dgreg import LaunchSpec
from dgreg.errors import DgregError
from dgreg_sm90.codegen import smem_bytes
from dgreg_sm90.config import Sm90GemmConfig

ARG_TYPES = (None, None, None, None, ctypes.c_void_p, ctypes.c_longlong, ctypes.c_longlong,
             ctypes.c_void_p, ctypes.c_longlong, ctypes.c_int, ctypes.c_int, ctypes.c_int,
             ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_longlong, ctypes.c_int)

# Split-K workspaces, one per (device, stream, size): concurrent launches on different
# streams must not share partial tiles or counters. Counters start at zero and the kernel
# leaves them at zero.
_WORKSPACES: dict[tuple[int, int, int, int], tuple[object, object]] = {}


def workspace(device: int, stream: int, floats: int, tiles: int) -> tuple[object, object]:
    import torch

    key = (device, stream, floats, tiles)
    found = _WORKSPACES.get(key)
    if found is None:
        found = (torch.empty(floats, dtype=torch.float32, device=f"cuda:{device}"),
                 torch.zeros(tiles, dtype=torch.int32, device=f"cuda:{device}"))
        _WORKSPACES[key] = found
    return found


def _tma_aligned(x: int) -> int:
    return -(-x // 4) * 4  # FP32 elements per 16 bytes


def psum_to_row_groups(ends, m: int, alignment: int = 128):
    """Per-row expert ids (-1: padding) from the prefix-sum form, on the device, no sync:
    expert g owns rows [align(ends[g-1], alignment), ends[g])."""
    import torch

    ends = ends.to(torch.int64)
    starts = torch.cat([ends.new_zeros(1), (ends[:-1] + alignment - 1) // alignment * alignment])
    rows = torch.arange(m, device=ends.device)
    group = torch.searchsorted(ends, rows, right=True)
    inside = group < ends.numel()
    clamped = group.clamp(max=ends.numel() - 1)
    valid = inside & (rows >= starts[clamped])
    return torch.where(valid, group, -1).to(torch.int32)


def _flat(name: str, x, rows: int):
    """[G, R, C] as [G * R, C] without copying; the masked kernel writes D in place."""
    if x.stride(0) != x.shape[1] * x.stride(1) and x.shape[0] > 1:
        raise DgregError(f"the sm90 masked kernel needs '{name}' [G, M_max, *] with its groups "
                         f"back to back (got strides {list(x.stride())}); pass a contiguous "
                         f"tensor or pin plugin='reference'")
    return x.reshape(rows, x.shape[2]) if x.is_contiguous() else x.view(rows, x.shape[2])


def gemm_launch(config: Sm90GemmConfig, m: int, n: int, k: int, groups: int = 1) -> LaunchSpec:
    """Launch description for calls of one shape; for the masked kernel ``m`` is M_max."""
    from dgreg.jit.launch import raw_stream_getter
    from dgreg.jit.tma import tensor_map
    from dgreg.layout import get_mn_major_tma_aligned_tensor

    bm, bn = config.block_m, config.block_n
    m_per_group = m
    if config.masked:  # A, its scales and D seen as [G * M_max, *]
        m = groups * m_per_group
    m_pad = _tma_aligned(m)
    tiles = -(-m // bm) * -(-n // bn)
    split = config.split_k
    raw_stream = raw_stream_getter()
    fp8 = config.dtype == "fp8"
    operand, box_k = ("uint8", 128) if fp8 else ("bfloat16", 64)  # 128 bytes of K per box row
    step = 16 if fp8 else 8  # elements per 16 bytes
    k_row = -(-k // step) * step  # a 1-row operand's stride is never used; keep it aligned
    # A plan fixes every shape and box, so its TMA maps differ only by address and row stride:
    # a small per-plan cache keyed by those two is much cheaper than the global one.
    maps: dict[tuple[int, int, int], object] = {}
    tma_store = bn % 64 == 0 and not config.grouped  # as the kernel decides (TMA_STORE)

    def cached(slot: int, address: int, row_stride: int, make):
        key = (slot, address, row_stride)
        found = maps.get(key)
        if found is None:
            if len(maps) > 512:
                maps.clear()
            found = maps[key] = make()
        return found

    def pack(call):
        a, b, sfa, sfb, d = call.a, call.b, call.a_scale, call.b_scale, call.d
        if config.masked:
            a, d = _flat("a", a, m), _flat("d", d, m)
            if sfa is not None:
                sfa = sfa.reshape(m, sfa.shape[2])
        a_row = a.stride(0) if m > 1 else k_row
        map_a = cached(0, a.data_ptr(), a_row, lambda: tensor_map(
            a.data_ptr(), operand, (m, k), (a_row, 1), (bm, box_k), 128))
        row_groups, sfb_stride_g = 0, 0
        if config.grouped:  # B [G, N, K] read as [G * N, K]
            if b.stride(0) != n * b.stride(1):
                b = b.contiguous()
            groups = b.shape[0]
            map_b = cached(1, b.data_ptr(), b.stride(1), lambda: tensor_map(
                b.data_ptr(), operand, (groups * n, k), (b.stride(1), 1), (bn, box_k), 128))
            ids = call.grouped_layout  # masked: masked_m [G]
            if call.use_psum_layout:
                ids = psum_to_row_groups(ids, m)
            # A tensor made here may be freed when pack returns: torch's caching allocator hands
            # its memory only to work queued after this kernel on the same stream.
            row_groups = ids.data_ptr()
            if fp8:
                sfb_stride_g = sfb.stride(0)
                sfb = sfb[0]  # the kernel adds group * stride itself
        else:
            b_row = b.stride(0) if n > 1 else k_row
            map_b = cached(1, b.data_ptr(), b_row, lambda: tensor_map(
                b.data_ptr(), operand, (n, k), (b_row, 1), (bn, box_k), 128))
        if fp8:
            if sfa.stride() != (1, m_pad):  # the kernel TMA-loads A's scales MN-major, aligned
                sfa = get_mn_major_tma_aligned_tensor(sfa)
            map_sfa = cached(2, sfa.data_ptr(), m_pad, lambda: tensor_map(
                sfa.data_ptr(), "float32", (sfa.shape[1], m), (m_pad, 1), (1, bm)))
            sfb_args = (sfb.data_ptr(), sfb.stride(0), sfb.stride(1))
        else:  # no scales: the kernel never reads these arguments
            map_sfa, sfb_args = map_a, (0, 0, 0)
        if tma_store:
            d_row = d.stride(0) if m > 1 else -(-n // 8) * 8
            map_d = cached(3, d.data_ptr(), d_row, lambda: tensor_map(
                d.data_ptr(), "bfloat16", (m, n), (d_row, 1), (bm, 64), 128))
        else:  # the kernel's coalesced epilogue never reads it
            map_d = map_a
        ws = counters = 0
        if split > 1:
            device = d.device.index
            stream = raw_stream(device)
            ws_t, counters_t = workspace(device, stream, tiles * split * bm * bn, tiles)
            ws, counters = ws_t.data_ptr(), counters_t.data_ptr()
        return (map_a, map_b, map_sfa, map_d, *sfb_args,
                d.data_ptr(), d.stride(0), m, n, k, ws, counters, row_groups, sfb_stride_g,
                m_per_group)

    return LaunchSpec(grid=(config.num_sms, 1, 1), block=(config.threads, 1, 1), pack=pack,
                      arg_types=ARG_TYPES, shared_mem=smem_bytes(config))
