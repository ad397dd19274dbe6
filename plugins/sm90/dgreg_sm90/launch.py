"""Kernel arguments for one call of the SM90 FP8 kernel (runs on the hot path: keep it lean)."""

from __future__ import annotations

import ctypes

from dgreg import LaunchSpec
from dgreg.errors import DgregError
from dgreg_sm90.config import Sm90GemmConfig
from dgreg_sm90.heuristics import smem_bytes, tile_blocks
from dgreg_sm90.transpose import to_k_major

_P, _I64, _I32 = ctypes.c_void_p, ctypes.c_longlong, ctypes.c_int
# the kernel's parameters (sm90_gemm.cuh): five tensor maps, B block scales and strides, D and
# C with their row and group strides, whether D's map is valid, sizes, the grouping array, the
# split-K workspace
ARG_TYPES = (None, None, None, None, None, _P, _I64, _I64, _I64, _P, _I64, _I64, _P, _I64, _I64,
             _I32, _I32, _I32, _I32, _I32, _I32, _I32, _P, _P, _P)

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
    return x.view(rows, x.shape[2])


def k_grouped_operand(x, ks: tuple[int, ...], block: int):
    """The K-grouped operand ([MN, sum K], MN-major as passed) K-major, each group's K slice
    starting at a multiple of ``block`` (zero padding between groups when a K is not a
    multiple of it), so that no K block of the kernel straddles two groups."""
    import torch

    x = to_k_major(x)
    if all(k % block == 0 for k in ks):
        return x
    padded = [-(-k // block) * block for k in ks]
    out = torch.zeros(x.shape[0], sum(padded), dtype=x.dtype, device=x.device)
    src = dst = 0
    for k, width in zip(ks, padded, strict=True):
        out[:, dst:dst + k] = x[:, src:src + k]
        src, dst = src + k, dst + width
    return out


def block_offsets(ks: tuple[int, ...], block: int) -> list[int]:
    """Each group's first K block, and the end: [0, b0, b0 + b1, ...] (len G + 1)."""
    offsets = [0]
    for k in ks:
        offsets.append(offsets[-1] + -(-k // block))
    return offsets


def gemm_launch(config: Sm90GemmConfig, m: int, n: int, k: int, groups: int = 1,
                group_ks: tuple[int, ...] | None = None, ue8m0: bool = False) -> LaunchSpec:
    """Launch description for calls of one shape; for the masked kernel ``m`` is M_max, for the
    K-grouped one ``k`` is the sum of ``group_ks``; ``ue8m0``: the scales come packed."""
    import torch

    from dgreg.jit.launch import raw_stream_getter
    from dgreg.jit.tma import PlanMaps, tensor_map
    from dgreg.layout import (
        get_mn_major_tma_aligned_tensor,
        get_tma_aligned_size,
        unpack_ue8m0_from_int,
    )

    bm, bn = config.block_m, config.block_n
    m_per_group = m
    masked, grouped, kgrouped = config.masked, config.grouped, config.k_grouped
    if masked:  # A, its scales and D seen as [G * M_max, *]
        m = groups * m_per_group
    fp8, sfb_rows = config.dtype == "fp8", config.sfb_rows
    operand, box_k = ("uint8", 128) if fp8 else ("bfloat16", 64)  # 128 bytes of K per box row
    offsets: dict[int, object] = {}  # K-grouped: each group's first K block, per device
    if kgrouped:
        kb_offsets = block_offsets(group_ks, box_k)
        k = kb_offsets[-1] * box_k  # the padded K of the operands the kernel reads
    k_blocks = -(-k // 128)  # FP8 scale blocks
    # per-row FP32 scales as the kernel TMA-loads them: MN-major, each K block's rows 16-byte
    # aligned ([lead * KB, rows] seen 2-D); masked A scales stay [G, M_max, KB] (expert g's
    # K block kb is row g * KB + kb)
    n_pad = get_tma_aligned_size(n, 4)
    sfb_lead = groups if grouped else 1
    if masked:
        m_pad = get_tma_aligned_size(m_per_group, 4)
        sfa_strides = (k_blocks * m_pad, 1, m_pad)
        sfa_rows = (groups * k_blocks, m_per_group)
    else:
        m_pad = get_tma_aligned_size(m, 4)
        sfa_strides, sfa_rows = (1, m_pad), (k_blocks, m)
    sfb_strides = (n_pad * k_blocks, 1, n_pad) if grouped else (1, n_pad)
    # split-K partials and counters: one per tile (with multicast, per tile of every pair)
    m_blocks, n_blocks = tile_blocks(m, n, bm, bn, config.multicast)
    tiles = m_blocks * n_blocks * (groups if kgrouped else 1)
    # rows of the A and B boxes: with multicast each CTA loads half of the shared tile
    box_rows = (bm // 2 if config.multicast == "a" else bm, bn // 2 if config.multicast == "b" else bn)
    split = config.split_k
    raw_stream = raw_stream_getter()
    step = 16 if fp8 else 8  # elements per 16 bytes
    k_row = -(-k // step) * step  # a 1-row operand's stride is never used; keep it aligned
    maps = PlanMaps()
    tma_store = config.epilogue in ("tma", "mixed")
    # D's TMA box: 64-column chunks under the 128B swizzle, or the whole width unswizzled, of
    # the rows one group of the tile's writers stores
    d_rows = config.epilogue_rows
    d_box, d_swizzle = ((d_rows, 64), 128) if bn % 64 == 0 else ((d_rows, bn), 0)
    b_rows = groups * n if grouped else n
    sizes = (m, n, k, groups, m_per_group)
    no_c = (0, 0, 0, 0)
    no_split = (0, 0)  # workspace and counters

    # Everything below runs on every call. Tensors made here stay referenced until pack
    # returns (see dgreg.LaunchSpec).
    def operand_map(slot, x, rows, row):
        address = x.data_ptr()
        found = maps.get((slot, address, row))
        if found is None:
            found = maps.add((slot, address, row), tensor_map(
                address, operand, (rows, k), (row, 1), (box_rows[slot], box_k), 128))
        return found

    def row_scales(slot, sf, strides, rows, pitch, box):
        """Per-row FP32 scales as the kernel TMA-loads them ([rows of K blocks, MN] with the
        MN rows 16-byte aligned) and their map; UE8M0 ones unpacked (powers of two: exact)."""
        if ue8m0:
            sf = unpack_ue8m0_from_int(sf, k_blocks)
        if sf.stride() != strides:
            sf = get_mn_major_tma_aligned_tensor(sf)
        address = sf.data_ptr()
        found = maps.get((slot, address))
        if found is None:
            found = maps.add((slot, address), tensor_map(
                address, "float32", rows, (pitch, 1), box))
        return sf, found

    def scale_maps(sfa, sfb, placeholder):
        """FP8: the TMA maps of A's scales (and of B's per-row scales), the 1d2d B-scale
        arguments, and the scale tensors read (which the caller keeps until it returns)."""
        sfa, map_sfa = row_scales(2, sfa, sfa_strides, sfa_rows, m_pad, (1, bm))
        if sfb_rows:
            sfb, map_sfb = row_scales(4, sfb, sfb_strides, (sfb_lead * k_blocks, n), n_pad,
                                      (1, bn))
            return map_sfa, map_sfb, (0, 0, 0, 0), (sfa, sfb)
        st = sfb.stride()
        if grouped:  # [G, NB, KB]: the kernel adds group * stride itself
            return map_sfa, placeholder, (sfb.data_ptr(), st[1], st[2], st[0]), (sfa, sfb)
        return map_sfa, placeholder, (sfb.data_ptr(), st[0], st[1], 0), (sfa, sfb)

    def output_map(address, ldd, placeholder):
        """D's TMA map and 1, or the placeholder and 0 where the kernel stores D without the
        TMA: FP32 D or a C (from registers), or N not a multiple of 8 (the threads' stores
        then write it). TMA stores write whole 16-byte units, so with such an N they would
        write past the row's end into the padding of a row-padded D, and a D the call
        allocates has rows that are not 16-byte aligned."""
        row = ldd if m > 1 else n
        if not tma_store or n % 8 or row % 8 or address % 16:
            return placeholder, 0
        found = maps.get((3, address, row))
        if found is None:
            found = maps.add((3, address, row), tensor_map(
                address, "bfloat16", (m, n), (row, 1), d_box, d_swizzle))
        return found, 1

    def split_buffers(d):  # split-K only
        device = d.device.index
        ws, counters = workspace(device, raw_stream(device), tiles * split * bm * bn, tiles)
        return ws.data_ptr(), counters.data_ptr()

    def accumulator(c, stride_g):
        return (c.data_ptr(), c.stride(-2), stride_g, int(c.dtype == torch.float32))

    def pack(call):  # grouped kernels
        a, b, d, c = call.a, call.b, call.d, call.c
        if masked:
            a, d = _flat("a", a, m), _flat("d", d, m)
        if kgrouped:
            a = k_grouped_operand(a, group_ks, box_k)
            b = k_grouped_operand(b, group_ks, box_k)
            device = a.device.index
            found = offsets.get(device)
            if found is None:
                found = offsets[device] = torch.tensor(kb_offsets, dtype=torch.int32,
                                                       device=a.device)
            row_groups = found.data_ptr()
        else:  # M-grouped, B [G, N, K] read as [G * N, K]
            if b.stride(-1) != 1:  # the wgmma reads operands K-major only
                b = to_k_major(b)
            if b.stride(0) != n * b.stride(1):
                b = b.contiguous()
            ids = call.grouped_layout  # masked: masked_m [G]
            if call.use_psum_layout:
                ids = psum_to_row_groups(ids, m)
            row_groups = ids.data_ptr()
        map_a = operand_map(0, a, m, a.stride(-2) if m > 1 else k_row)
        map_b = operand_map(1, b, b_rows, b.stride(-2) if n > 1 else k_row)
        map_sfa = map_sfb = map_a  # placeholders the kernel never reads
        sfb_args = (0, 0, 0, 0)
        if fp8:
            map_sfa, map_sfb, sfb_args, _scales = scale_maps(call.a_scale, call.b_scale, map_a)
        map_d, d_tma = output_map(d.data_ptr(), d.stride(-2), map_a)
        # D and C: [M, N], or K-grouped [G, M, N] (row stride, group stride)
        d_stride_g = d.stride(0) if kgrouped else 0
        c_args = no_c if c is None else accumulator(c, c.stride(0) if kgrouped else 0)
        return (map_a, map_b, map_sfa, map_sfb, map_d, *sfb_args, d.data_ptr(), d.stride(-2),
                d_stride_g, *c_args, d_tma, *sizes, row_groups,
                *(split_buffers(d) if split > 1 else no_split))

    # Calls whose operands need no copy (K-major A and B, B's experts back to back, scales
    # MN-major and TMA-aligned in FP32, per-row expert ids rather than prefix sums) make no
    # tensor: their arguments are a function of the tensors' addresses and row strides (and,
    # split, of the stream), which lets the core keep them per address. K-grouped calls
    # always copy their operands.
    def reusable(call):
        sfa, sfb, b = call.a_scale, call.b_scale, call.b
        if ue8m0 or call.a.stride(-1) != 1 or b.stride(-1) != 1 or \
                (sfa is not None and sfa.stride() != sfa_strides) or \
                (sfb_rows and sfb.stride() != sfb_strides):
            return False
        return not grouped or (b.stride(0) == n * b.stride(1) and not call.use_psum_layout)

    def pack_dense(call):  # each tensor's strides read once
        a, b, d, c = call.a, call.b, call.d, call.c
        sa, sb = a.stride(), b.stride()
        if sa[1] != 1:  # the wgmma reads operands K-major only: NN, TN, TT copy once
            a = to_k_major(a)
            sa = a.stride()
        if sb[1] != 1:
            b = to_k_major(b)
            sb = b.stride()
        map_a = operand_map(0, a, m, sa[0] if m > 1 else k_row)
        map_b = operand_map(1, b, n, sb[0] if n > 1 else k_row)
        map_sfa = map_sfb = map_a  # placeholders the kernel never reads
        sfb_args = (0, 0, 0, 0)
        if fp8:
            map_sfa, map_sfb, sfb_args, _scales = scale_maps(call.a_scale, call.b_scale, map_a)
        d_address, ldd = d.data_ptr(), d.stride(0)
        map_d, d_tma = output_map(d_address, ldd, map_a)
        c_args = no_c if c is None else accumulator(c, 0)
        return (map_a, map_b, map_sfa, map_sfb, map_d, *sfb_args, d_address, ldd, 0, *c_args,
                d_tma, *sizes, 0, *(split_buffers(d) if split > 1 else no_split))

    return LaunchSpec(grid=(config.num_sms, 1, 1), block=(config.threads, 1, 1),
                      pack=pack if masked or grouped or kgrouped else pack_dense,
                      arg_types=ARG_TYPES, cluster=(config.cluster, 1, 1),
                      shared_mem=smem_bytes(config),
                      reusable=None if kgrouped else reusable)
