"""Kernel arguments for calls of the SM100 kernels: five TMA maps and a few scalars.

``gemm_launch`` runs once per planned shape; the ``pack`` it returns runs on every call.
Maps are 3-D (``[G, rows, K]`` for K-major operands, ``[G, K, rows]`` for MN-major ones,
``G = 1`` when there are no groups), so that one kernel reads every grouping.
"""

from __future__ import annotations

import ctypes
from itertools import accumulate
from typing import Any

from dgreg import LaunchSpec
from dgreg_sm100.config import MMA_ROWS, Sm100GemmConfig
from dgreg_sm100.heuristics import block_k, smem_bytes

ARG_TYPES = (
    None, None, None, None, None,  # maps: X, Y, X scales, Y scales, D
    ctypes.c_void_p, ctypes.c_longlong, ctypes.c_longlong,  # d, its row and group strides
    ctypes.c_void_p, ctypes.c_longlong, ctypes.c_longlong, ctypes.c_int,  # c, strides, c is fp32
    ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int,  # m, n, k, groups
    ctypes.c_void_p, ctypes.c_int)  # grouped layout, psum
_TMA_BYTES = 16  # TMA wants every stride a multiple of 16 bytes
_SWIZZLE_BYTES = 128


def _padded(elements: int, itemsize: int) -> int:
    """``elements`` rounded up to a whole number of 16 bytes."""
    step = _TMA_BYTES // itemsize
    return max(step, -(-elements // step) * step)


def operand_dims(x: Any, k_major: bool) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """A logical ``[..., rows, K]`` view as the kernel's 3-D map: ``[G, rows, K]`` when
    K-major, ``[G, K, rows]`` when MN-major (outermost first; strides in elements)."""
    groups = x.shape[0] if x.dim() == 3 else 1
    rows, k = x.shape[-2], x.shape[-1]
    inner, outer, stride = (k, rows, x.stride(-2)) if k_major else (rows, k, x.stride(-1))
    if outer <= 1:  # a stride that is never stepped: any 16-byte multiple will do
        stride = _padded(inner, x.element_size())
    group_stride = x.stride(0) if x.dim() == 3 and groups > 1 else outer * stride
    return (groups, outer, inner), (group_stride, stride, 1)


def mn_major_scales(sf: Any) -> Any:
    """Packed UE8M0 scales ``[..., rows, words]`` (int32) laid out as the kernel's TMA reads
    them: stride 1 along rows, ``words`` stride the rows padded to 16 bytes. ``sf`` itself
    when TMA can read it so (``get_mn_major_tma_aligned_packed_ue8m0_tensor`` makes that
    layout; strides of size-1 dims do not matter, see ``scale_dims``), else a copy."""
    rows, words = sf.shape[-2], sf.shape[-1]
    padded = _padded(rows, 4)
    aligned = (rows == 1 or sf.stride(-2) == 1) and (words == 1 or sf.stride(-1) == padded)
    if aligned and (sf.dim() == 2 or sf.shape[0] == 1 or sf.stride(0) % 4 == 0):
        return sf
    from dgreg.layout import get_mn_major_tma_aligned_ue8m0_words  # imports torch

    return get_mn_major_tma_aligned_ue8m0_words(sf)


def scale_dims(sf: Any) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """The map of MN-major scales: ``[G, words, rows]``."""
    groups = sf.shape[0] if sf.dim() == 3 else 1
    rows, words = sf.shape[-2], sf.shape[-1]
    stride = sf.stride(-1) if words > 1 else _padded(rows, 4)
    group_stride = sf.stride(0) if sf.dim() == 3 and groups > 1 else words * stride
    return (groups, words, rows), (group_stride, stride, 1)


def output_dims(t: Any) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """D (or C), row-major ``[..., M, N]``, as ``[G, M, N]``."""
    groups = t.shape[0] if t.dim() == 3 else 1
    m, n = t.shape[-2], t.shape[-1]
    row = t.stride(-2) if m > 1 else _padded(n, t.element_size())
    group_stride = t.stride(0) if t.dim() == 3 and groups > 1 else m * row
    return (groups, m, n), (group_stride, row, 1)


def _k_offsets(ks: tuple[int, ...], device: Any) -> Any:
    import torch

    return torch.tensor([0, *accumulate(ks)], dtype=torch.int32, device=device)


def gemm_launch(config: Sm100GemmConfig, call: Any) -> LaunchSpec:
    """How to launch ``config``'s kernel for calls shaped like ``call``."""
    from dgreg.jit.tma import PlanMaps, tensor_map

    swap = config.swap_ab
    fp8 = config.dtype == "fp8"
    operand = "uint8" if fp8 else "bfloat16"
    bk = block_k(config.dtype)
    atom = _SWIZZLE_BYTES // (1 if fp8 else 2)
    x_k_major, y_k_major = ((config.b_k_major, config.a_k_major) if swap
                            else (config.a_k_major, config.b_k_major))
    y_rows = config.umma_n // config.cluster
    x_box = (1, MMA_ROWS, bk) if x_k_major else (1, bk, atom)
    y_box = (1, y_rows, bk) if y_k_major else (1, bk, atom)
    sfx_box, sfy_box = (1, 1, MMA_ROWS), (1, 1, config.umma_n)
    tma_store = config.grouping in ("none", "k_grouped")
    d_type = "float32" if config.d_dtype == "fp32" else "bfloat16"
    d_box = (1, config.store_rows, 32)
    d_swizzle = 128 if config.d_dtype == "fp32" else 64  # a staged row: 32 columns of D
    p = call.problem
    # K-grouped: the kernel finds group g's K slice at offsets[g] .. offsets[g + 1]
    offsets = _k_offsets(p.group_ks, call.a.device) if config.grouping == "k_grouped" else None

    maps = PlanMaps()  # keyed by address and strides: the plan fixes shapes and boxes

    def operand_map(slot: int, x: Any, k_major: bool, box: tuple[int, int, int]) -> Any:
        key = (slot, x.data_ptr(), x.stride())
        found = maps.get(key)
        if found is None:
            shape, strides = operand_dims(x, k_major)
            found = maps.add(key, tensor_map(key[1], operand, shape, strides, box,
                                             _SWIZZLE_BYTES))
        return found

    def scale_map(slot: int, sf: Any, box: tuple[int, int, int]) -> Any:
        key = (slot, sf.data_ptr(), sf.stride())
        found = maps.get(key)
        if found is None:
            shape, strides = scale_dims(sf)
            found = maps.add(key, tensor_map(key[1], "int32", shape, strides, box))
        return found

    def pack(call: Any) -> tuple[Any, ...]:
        x, y = (call.b, call.a) if swap else (call.a, call.b)
        map_x = operand_map(0, x, x_k_major, x_box)
        map_y = operand_map(1, y, y_k_major, y_box)
        if fp8:  # (a converted copy stays referenced here until pack returns)
            sfx, sfy = mn_major_scales(call.a_scale), mn_major_scales(call.b_scale)
            if swap:
                sfx, sfy = sfy, sfx
            map_sfx, map_sfy = scale_map(2, sfx, sfx_box), scale_map(3, sfy, sfy_box)
        else:  # no scales: the kernel never reads these maps
            map_sfx = map_sfy = map_x
        d, c = call.d, call.c
        d_shape, d_strides = output_dims(d)
        if tma_store:
            key = (4, d.data_ptr(), d_strides)
            map_d = maps.get(key)
            if map_d is None:
                map_d = maps.add(key, tensor_map(key[1], d_type, d_shape, d_strides, d_box,
                                                 d_swizzle))
        else:  # M-grouped tiles store rows directly
            map_d = map_x
        c_args = (0, 0, 0, 0)
        if c is not None:
            _, c_strides = output_dims(c)
            c_args = (c.data_ptr(), c_strides[1], c_strides[0], int(c.element_size() == 4))
        if offsets is not None:
            layout, psum = offsets.data_ptr(), 0
        elif call.grouped_layout is not None:
            layout, psum = call.grouped_layout.data_ptr(), int(call.use_psum_layout)
        else:
            layout, psum = 0, 0
        return (map_x, map_y, map_sfx, map_sfy, map_d, d.data_ptr(), d_strides[1], d_strides[0],
                *c_args, p.m, p.n, p.k, p.groups, layout, psum)

    return LaunchSpec(grid=(config.num_sms, 1, 1), block=(config.threads, 1, 1), pack=pack,
                      arg_types=ARG_TYPES, cluster=(config.cluster, 1, 1),
                      shared_mem=smem_bytes(config))
