"""TMA descriptors (``CUtensorMap``) for 2-D to 5-D tiles, with a small cache.

Dimensions are given outermost first, as torch orders them; the driver wants them innermost
first, which this module handles. Encoding a map costs microseconds, so maps are cached by
(address, shape, strides, box, swizzle): a call with the same tensors reuses them.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from dgreg.errors import InvalidArgumentError
from dgreg.jit.launch import check, driver

__all__ = ["SWIZZLE_BYTES", "PlanMaps", "tensor_map", "tensor_map_for"]

#: swizzle span in bytes -> the name of the driver's enum member
SWIZZLE_BYTES = {0: "CU_TENSOR_MAP_SWIZZLE_NONE", 32: "CU_TENSOR_MAP_SWIZZLE_32B",
                 64: "CU_TENSOR_MAP_SWIZZLE_64B", 128: "CU_TENSOR_MAP_SWIZZLE_128B"}
_DTYPES = {"float8_e4m3fn": ("CU_TENSOR_MAP_DATA_TYPE_UINT8", 1),
           "uint8": ("CU_TENSOR_MAP_DATA_TYPE_UINT8", 1),
           "bfloat16": ("CU_TENSOR_MAP_DATA_TYPE_BFLOAT16", 2),
           "float16": ("CU_TENSOR_MAP_DATA_TYPE_FLOAT16", 2),
           "float32": ("CU_TENSOR_MAP_DATA_TYPE_FLOAT32", 4),
           "int32": ("CU_TENSOR_MAP_DATA_TYPE_INT32", 4)}
_CACHE: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
_CACHE_SIZE = 4096


def tensor_map(address: int, dtype: str, shape: Sequence[int], strides: Sequence[int],
               box: Sequence[int], swizzle: int = 0, *, l2_promotion: int = 256) -> Any:
    """Encode a tiled map. ``shape``/``strides`` (elements)/``box`` are outermost first; the
    innermost stride must be 1 and every other stride a multiple of 16 bytes."""
    if dtype not in _DTYPES:
        raise InvalidArgumentError("dtype", f"one of {', '.join(_DTYPES)}", dtype)
    if swizzle not in SWIZZLE_BYTES:
        raise InvalidArgumentError("swizzle", "0, 32, 64 or 128 (bytes)", swizzle)
    rank = len(shape)
    if not 1 <= rank <= 5 or len(strides) != rank or len(box) != rank:
        raise InvalidArgumentError("shape", "1 to 5 dims with matching strides and box",
                                   f"shape {list(shape)}, strides {list(strides)}, box {list(box)}")
    key = (address, dtype, tuple(shape), tuple(strides), tuple(box), swizzle, l2_promotion)
    cached = _CACHE.get(key)
    if cached is not None:
        _CACHE.move_to_end(key)
        return cached
    cu = driver()
    enum_name, size = _DTYPES[dtype]
    if strides[-1] != 1:
        raise InvalidArgumentError("strides", "1 for the innermost dim", list(strides))
    dims = [cu.cuuint64_t(int(s)) for s in reversed(shape)]
    byte_strides = [cu.cuuint64_t(int(s) * size) for s in reversed(strides[:-1])]
    boxes = [cu.cuuint32_t(int(b)) for b in reversed(box)]
    ones = [cu.cuuint32_t(1)] * rank
    promo = {0: "CU_TENSOR_MAP_L2_PROMOTION_NONE", 64: "CU_TENSOR_MAP_L2_PROMOTION_L2_64B",
             128: "CU_TENSOR_MAP_L2_PROMOTION_L2_128B",
             256: "CU_TENSOR_MAP_L2_PROMOTION_L2_256B"}[l2_promotion]
    result = cu.cuTensorMapEncodeTiled(
        getattr(cu.CUtensorMapDataType, enum_name), rank, address, dims, byte_strides, boxes,
        ones, cu.CUtensorMapInterleave.CU_TENSOR_MAP_INTERLEAVE_NONE,
        getattr(cu.CUtensorMapSwizzle, SWIZZLE_BYTES[swizzle]),
        getattr(cu.CUtensorMapL2promotion, promo),
        cu.CUtensorMapFloatOOBfill.CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE)
    tmap = check(result, f"cuTensorMapEncodeTiled(shape={list(shape)}, box={list(box)}, "
                         f"swizzle={swizzle})")
    _CACHE[key] = tmap
    if len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return tmap


def tensor_map_for(tensor: Any, box: Sequence[int], swizzle: int = 0) -> Any:
    """A map over a torch tensor (its shape and strides), tiles of ``box`` elements."""
    return tensor_map(tensor.data_ptr(), str(tensor.dtype).removeprefix("torch."),
                      tuple(tensor.shape), tuple(tensor.stride()), box, swizzle)


class PlanMaps(dict):
    """The TMA maps of one launch plan, for its ``pack(call)`` on the hot path.

    A plan fixes dtypes, shapes and boxes, so its maps differ from call to call only by
    address and strides: a plain ``dict.get`` keyed by ``(slot, address, strides)`` is much
    cheaper than :func:`tensor_map`'s key over every field. ``add`` stores a new map, clearing
    the plan's maps when there are ``limit`` of them.
    """

    __slots__ = ("limit",)

    def __init__(self, limit: int = 512) -> None:
        super().__init__()
        self.limit = limit

    def add(self, key: tuple[Any, ...], tmap: Any) -> Any:
        if len(self) >= self.limit:
            self.clear()
        self[key] = tmap
        return tmap
