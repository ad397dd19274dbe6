"""Operand and scale-factor preparation: FP8 casts, UE8M0 packing and TMA-aligned layouts.

These helpers mirror DeepGEMM's utility functions so code written against DeepGEMM keeps
working: they produce the quantised operands and the scale-factor tensors, in the memory
layout the kernels read through TMA. Everything here is plain torch and runs on any device;
nothing launches a dgreg kernel. The module imports torch at its top, so ``dgreg`` imports it
lazily.

Conventions:

* FP32 scale factors cover 128 elements along K (``gran_k``) and, for 128x128 block scales,
  128 rows as well (:data:`dgreg.spec.SCALE_BLOCK`).
* A scale ``sf`` dequantises as ``x ~= x_fp8 * sf``; it is ``amax / 448`` where 448 is the
  largest finite ``float8_e4m3fn`` value.
* UE8M0 scales are powers of two stored as their 8-bit float32 exponent, four per int32.
"""

from __future__ import annotations

import operator

import torch
import torch.nn.functional as F
from torch import Tensor

from dgreg.errors import InvalidArgumentError
from dgreg.spec import SCALE_BLOCK

__all__ = [
    "align",
    "calc_diff",
    "ceil_div",
    "ceil_to_ue8m0",
    "get_col_major_tma_aligned_tensor",
    "get_k_alignment_for_contiguous_layout",
    "get_m_alignment_for_contiguous_layout",
    "get_mk_alignment_for_contiguous_layout",
    "get_mn_major_tma_aligned_packed_ue8m0_tensor",
    "get_mn_major_tma_aligned_tensor",
    "get_mn_major_tma_aligned_ue8m0_words",
    "get_tma_aligned_size",
    "pack_ue8m0_to_int",
    "per_block_cast_to_fp8",
    "per_channel_cast_to_fp8",
    "per_token_cast_to_fp8",
    "unpack_ue8m0_from_int",
]

#: Largest finite float8_e4m3fn value.
FP8_E4M3_MAX = 448.0
# Floor on a block's amax, so an all-zero block gets a finite, non-zero scale.
_AMAX_FLOOR = 1e-4
# TMA needs global strides (and so the MN extent of an MN-major tensor) in 16-byte multiples.
_TMA_ALIGNMENT_BYTES = 16
# UE8M0 exponent of 1.0, used to pad partial int32 words.
_UE8M0_ONE = 127
_FLOAT32_MANTISSA_MASK = 0x007FFFFF
_FLOAT32_EXPONENT_MASK = 0x7F800000
# float32 bit patterns for the two UE8M0 codes without a normal float32 counterpart.
_FLOAT32_BITS_2_POW_M127 = 0x00400000  # code 0: 2**-127, a float32 subnormal
_FLOAT32_BITS_NAN = 0x7FC00000  # code 255: NaN in UE8M0


# --------------------------------------------------------------------------------------------
# Argument checks
# --------------------------------------------------------------------------------------------


def _as_int(value: object, argument: str) -> int:
    if isinstance(value, bool):
        raise InvalidArgumentError(argument, "an int", repr(value))
    try:
        return operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise InvalidArgumentError(argument, "an int", type(value).__name__) from None


def _check_tensor(
    value: object, argument: str, ndims: tuple[int, ...] | None, dtypes: tuple[torch.dtype, ...]
) -> Tensor:
    """Check type, rank (``None``: at least 2) and dtype of a tensor argument."""
    if ndims is None:
        rank_text = "an N-D torch.Tensor (N >= 2)"
    else:
        rank_text = " or ".join(f"{n}-D" for n in ndims)
        rank_text = f"a {rank_text} torch.Tensor"
    if not isinstance(value, Tensor):
        raise InvalidArgumentError(argument, rank_text, type(value).__name__)
    rank_ok = value.dim() >= 2 if ndims is None else value.dim() in ndims
    if not rank_ok:
        raise InvalidArgumentError(argument, rank_text, f"shape {tuple(value.shape)}")
    if value.dtype not in dtypes:
        names = " or ".join(str(d) for d in dtypes)
        raise InvalidArgumentError(argument, f"of dtype {names}", str(value.dtype))
    return value


def _check_float32_tensor(value: object, argument: str) -> Tensor:
    """Check that ``value`` is a float32 tensor of any rank."""
    if not isinstance(value, Tensor):
        raise InvalidArgumentError(argument, "a torch.Tensor", type(value).__name__)
    if value.dtype != torch.float32:
        raise InvalidArgumentError(argument, "of dtype torch.float32", str(value.dtype))
    return value


def _check_gran_k(gran_k: object) -> int:
    value = _as_int(gran_k, "gran_k")
    if value <= 0:
        raise InvalidArgumentError("gran_k", "a positive int", value)
    return value


# --------------------------------------------------------------------------------------------
# Integer helpers
# --------------------------------------------------------------------------------------------


def ceil_div(a: int, b: int) -> int:
    """``ceil(a / b)`` in exact integer arithmetic; ``b`` must be positive."""
    a = _as_int(a, "a")
    b = _as_int(b, "b")
    if b <= 0:
        raise InvalidArgumentError("b", "a positive int", b)
    return -(-a // b)


def align(x: int, multiple: int) -> int:
    """``x`` rounded up to a multiple of ``multiple`` (positive)."""
    x = _as_int(x, "x")
    multiple = _as_int(multiple, "multiple")
    if multiple <= 0:
        raise InvalidArgumentError("multiple", "a positive int", multiple)
    return ceil_div(x, multiple) * multiple


def get_tma_aligned_size(x: int, element_size: int) -> int:
    """``x`` elements of ``element_size`` bytes, rounded up to a whole number of 16 bytes.

    TMA requires every global stride to be a multiple of 16 bytes, so this is the leading
    dimension an MN-major tensor with ``x`` rows needs.
    """
    x = _as_int(x, "x")
    element_size = _as_int(element_size, "element_size")
    if x < 0:
        raise InvalidArgumentError("x", "a non-negative int", x)
    if element_size not in (1, 2, 4, 8):
        raise InvalidArgumentError("element_size", "1, 2, 4 or 8", element_size)
    return align(x, _TMA_ALIGNMENT_BYTES // element_size)


def get_mk_alignment_for_contiguous_layout() -> int:
    """Row alignment of each group in an M-contiguous (or K-contiguous) grouped GEMM.

    Every group must start at a multiple of the kernels' 128-row block, which is also the
    granularity of the FP32 scale factors, so a block never straddles two groups.
    """
    return SCALE_BLOCK


#: DeepGEMM's older names for :func:`get_mk_alignment_for_contiguous_layout`.
get_m_alignment_for_contiguous_layout = get_mk_alignment_for_contiguous_layout
get_k_alignment_for_contiguous_layout = get_mk_alignment_for_contiguous_layout


# --------------------------------------------------------------------------------------------
# TMA-aligned MN-major layouts
# --------------------------------------------------------------------------------------------


def _mn_major_strides(shape: tuple[int, ...], element_size: int) -> tuple[int, ...]:
    mn, kb = shape[-2], shape[-1]
    aligned_mn = get_tma_aligned_size(mn, element_size)
    if len(shape) == 2:
        return (1, aligned_mn)
    return (aligned_mn * kb, 1, aligned_mn)


def _to_mn_major_tma_aligned(t: Tensor) -> Tensor:
    """Copy ``t`` ([MN, KB] or [G, MN, KB]) into the MN-major TMA layout unless already there."""
    shape = tuple(t.shape)
    strides = _mn_major_strides(shape, t.element_size())
    if tuple(t.stride()) == strides:
        return t
    aligned_mn = strides[-1]
    batch = shape[0] if len(shape) == 3 else 1
    # Allocate the padded rows too, so a TMA box over [aligned_MN, KB] stays inside the storage.
    storage = torch.empty(batch * aligned_mn * shape[-1], dtype=t.dtype, device=t.device)
    out = storage.as_strided(shape, strides)
    out.copy_(t)
    return out


def get_mn_major_tma_aligned_tensor(sf: Tensor) -> Tensor:
    """Return ``sf`` ([MN, KB] or [G, MN, KB], float32) in the MN-major layout TMA reads.

    The values and shape are unchanged; the strides become ``(1, aligned_MN)`` (2-D) or
    ``(aligned_MN * KB, 1, aligned_MN)`` (3-D) with ``aligned_MN = get_tma_aligned_size(MN, 4)``,
    because the kernels load scale factors one K-block column at a time. ``sf`` itself is
    returned when it already has exactly these strides.
    """
    sf = _check_tensor(sf, "sf", (2, 3), (torch.float32,))
    return _to_mn_major_tma_aligned(sf)


#: DeepGEMM's older name for :func:`get_mn_major_tma_aligned_tensor`.
get_col_major_tma_aligned_tensor = get_mn_major_tma_aligned_tensor


# --------------------------------------------------------------------------------------------
# UE8M0 scales
# --------------------------------------------------------------------------------------------


def _ceil_pow2(x: Tensor) -> Tensor:
    """Unchecked :func:`ceil_to_ue8m0` for float32 values in (0, 2**127]."""
    # Bit manipulation instead of 2**ceil(log2(x)): log2 rounds, so values just above a
    # power of two could come back rounded down, giving a scale smaller than requested.
    subnormal = x < 2.0**-126
    # Subnormals have no implicit leading one; scaling by 2**64 (exact) makes them normal.
    scaled = torch.where(subnormal, x * 2.0**64, x)
    bits = scaled.contiguous().view(torch.int32)
    exponent = bits & _FLOAT32_EXPONENT_MASK
    rounded = torch.where((bits & _FLOAT32_MANTISSA_MASK) != 0, exponent + (1 << 23), exponent)
    result = rounded.view(torch.float32)
    return torch.where(subnormal, result * 2.0**-64, result)


def ceil_to_ue8m0(x: Tensor) -> Tensor:
    """Round positive float32 values up to the next power of two (powers of two unchanged).

    UE8M0 scales can only hold powers of two. Rounding the scale *up* (never to nearest)
    guarantees ``|x| / sf <= amax / sf_exact = 448``, so the quantised values never leave the
    FP8 range; the price is up to one bit of precision. Values must be finite, positive and at
    most ``2**127`` so that the result is a finite power of two.
    """
    x = _check_float32_tensor(x, "x")
    if x.numel():
        ok = (x > 0) & (x <= 2.0**127)  # NaN fails both comparisons
        if not bool(ok.all()):
            bad = x[~ok]
            raise InvalidArgumentError(
                "x",
                "finite positive values no larger than 2**127",
                f"{bad.numel()} values outside that range, e.g. {bad[0].item()!r}",
            )
    return _ceil_pow2(x)


def _pack_exponents(sf: Tensor) -> Tensor:
    """Unchecked :func:`pack_ue8m0_to_int` for float32 powers of two."""
    codes = ((sf.contiguous().view(torch.int32) >> 23) & 0xFF).to(torch.int64)
    kb = codes.shape[-1]
    words = ceil_div(kb, 4)
    if words * 4 != kb:
        pad = codes.new_full((*codes.shape[:-1], words * 4 - kb), _UE8M0_ONE)
        codes = torch.cat([codes, pad], dim=-1)
    codes = codes.reshape(*codes.shape[:-1], words, 4)
    # Arithmetic on int64 rather than reinterpreting bytes keeps the byte order independent
    # of the host's endianness.
    packed = codes[..., 0] | codes[..., 1] << 8 | codes[..., 2] << 16 | codes[..., 3] << 24
    packed = torch.where(packed >= 2**31, packed - 2**32, packed)
    return packed.to(torch.int32)


def pack_ue8m0_to_int(sf: Tensor) -> Tensor:
    """Pack power-of-two float32 scales ``[..., MN, KB]`` into int32 ``[..., MN, ceil(KB/4)]``.

    Each scale becomes its UE8M0 code (the 8-bit biased exponent, bits 23..30 of the float32);
    KB entries ``4j .. 4j+3`` go into word ``j``, entry ``4j`` in the least significant byte,
    which is the order the kernels read them. A partial last word is padded with code 127
    (1.0). ``2**-127`` (a float32 subnormal) is accepted as code 0.
    """
    sf = _check_tensor(sf, "sf", None, (torch.float32,))
    if sf.numel():
        bits = sf.view(torch.int32)
        exponent = (bits >> 23) & 0xFF
        normal_power = ((bits & _FLOAT32_MANTISSA_MASK) == 0) & (exponent >= 1) & (exponent <= 254)
        # bits >= 0 excludes negative values (sign bit set).
        ok = (bits >= 0) & (normal_power | (bits == _FLOAT32_BITS_2_POW_M127))
        if not bool(ok.all()):
            index = tuple((~ok).nonzero()[0].tolist())
            value = sf[index].item()
            raise InvalidArgumentError(
                "sf", "positive powers of two (UE8M0-representable)", f"{value!r} at {index}"
            )
    return _pack_exponents(sf)


def unpack_ue8m0_from_int(packed: Tensor, kb: int | None = None) -> Tensor:
    """Inverse of :func:`pack_ue8m0_to_int`: int32 ``[..., MN, P]`` to float32 ``[..., MN, KB]``.

    ``KB`` is ``kb`` when given (it must need exactly ``P`` words), else ``4 * P``. Code ``e``
    becomes ``2**(e - 127)``; code 255, which UE8M0 reserves for NaN, becomes NaN.
    """
    packed = _check_tensor(packed, "packed", None, (torch.int32,))
    words = packed.shape[-1]
    if kb is None:
        kb = 4 * words
    else:
        kb = _as_int(kb, "kb")
        if kb < 0 or ceil_div(kb, 4) != words:
            raise InvalidArgumentError(
                "kb", f"an int in [{max(4 * words - 3, 0)}, {4 * words}] for {words} words", kb
            )
    wide = packed.to(torch.int64) & 0xFFFFFFFF
    codes = torch.stack([(wide >> (8 * i)) & 0xFF for i in range(4)], dim=-1)
    codes = codes.reshape(*packed.shape[:-1], 4 * words)[..., :kb]
    bits = torch.where(codes == 0, _FLOAT32_BITS_2_POW_M127, codes << 23)
    bits = torch.where(codes == 255, _FLOAT32_BITS_NAN, bits)
    return bits.to(torch.int32).view(torch.float32)


def get_mn_major_tma_aligned_packed_ue8m0_tensor(sf: Tensor) -> Tensor:
    """Round float32 scales up to UE8M0, pack them, and lay the words out MN-major for TMA.

    ``sf`` is ``[MN, KB]`` or ``[G, MN, KB]``; the result is int32 ``[..., MN, ceil(KB/4)]``
    with MN stride 1 and packed-K stride ``get_tma_aligned_size(MN, 4)`` (batch stride
    ``aligned_MN * ceil(KB/4)``), the layout the UE8M0 kernels load. Values are rounded up with
    :func:`ceil_to_ue8m0` first, so already-UE8M0 scales pass through unchanged.
    """
    sf = _check_tensor(sf, "sf", (2, 3), (torch.float32,))
    return _to_mn_major_tma_aligned(_pack_exponents(ceil_to_ue8m0(sf)))


def get_mn_major_tma_aligned_ue8m0_words(packed: Tensor) -> Tensor:
    """Lay out already-packed UE8M0 scales MN-major for TMA, without rounding or packing.

    ``packed`` is int32 ``[MN, W]`` or ``[G, MN, W]`` (as :func:`pack_ue8m0_to_int` returns);
    the result has the strides :func:`get_mn_major_tma_aligned_packed_ue8m0_tensor` gives.
    Values and shape are unchanged; ``packed`` itself is returned when it already has exactly
    those strides.
    """
    packed = _check_tensor(packed, "packed", (2, 3), (torch.int32,))
    return _to_mn_major_tma_aligned(packed)


# --------------------------------------------------------------------------------------------
# FP8 casts
# --------------------------------------------------------------------------------------------


def _check_cast_input(x: object) -> Tensor:
    return _check_tensor(x, "x", (2,), (torch.bfloat16, torch.float32))


def _quantize(blocks: Tensor, dims: tuple[int, ...], use_ue8m0: bool) -> tuple[Tensor, Tensor]:
    """Quantise float32 ``blocks`` with one scale per slice reduced over ``dims``."""
    amax = blocks.abs().amax(dim=dims, keepdim=True).clamp(min=_AMAX_FLOOR)
    sf = amax / FP8_E4M3_MAX
    if use_ue8m0:
        sf = _ceil_pow2(sf)
    # Rounding can put |x| / sf a hair above 448; clamp so no backend turns it into NaN.
    scaled = (blocks / sf).clamp(-FP8_E4M3_MAX, FP8_E4M3_MAX)
    return scaled.to(torch.float8_e4m3fn), sf


def per_token_cast_to_fp8(
    x: Tensor, use_ue8m0: bool = False, gran_k: int = 128
) -> tuple[Tensor, Tensor]:
    """Quantise ``x`` [M, K] to FP8 with one scale per row and per ``gran_k`` columns.

    This is the 1-D (activation) scaling of the 1d2d and 1d1d recipes. Returns
    ``(x_fp8 [M, K] float8_e4m3fn, sf [M, ceil(K / gran_k)] float32)`` with
    ``x ~= x_fp8 * sf`` per block. ``sf = max(amax, 1e-4) / 448``, rounded up to a power of two
    when ``use_ue8m0``. K needs no alignment: the last block is zero-padded internally.
    """
    x = _check_cast_input(x)
    gran_k = _check_gran_k(gran_k)
    m, k = x.shape
    kb = ceil_div(k, gran_k)
    padded = F.pad(x.float(), (0, kb * gran_k - k))
    q, sf = _quantize(padded.reshape(m, kb, gran_k), (2,), bool(use_ue8m0))
    return q.reshape(m, kb * gran_k)[:, :k].contiguous(), sf.reshape(m, kb)


def per_block_cast_to_fp8(
    x: Tensor, use_ue8m0: bool = False, gran_k: int = 128
) -> tuple[Tensor, Tensor]:
    """Quantise ``x`` [N, K] to FP8 with one scale per 128 x ``gran_k`` block.

    This is the 2-D (weight) scaling of the 1d2d recipe. Returns ``(x_fp8 [N, K],
    sf [ceil(N / 128), ceil(K / gran_k)] float32)``; scales as in :func:`per_token_cast_to_fp8`.
    N and K need no alignment: partial blocks are zero-padded internally.
    """
    x = _check_cast_input(x)
    gran_k = _check_gran_k(gran_k)
    n, k = x.shape
    nb, kb = ceil_div(n, SCALE_BLOCK), ceil_div(k, gran_k)
    padded = F.pad(x.float(), (0, kb * gran_k - k, 0, nb * SCALE_BLOCK - n))
    blocks = padded.reshape(nb, SCALE_BLOCK, kb, gran_k)
    q, sf = _quantize(blocks, (1, 3), bool(use_ue8m0))
    q = q.reshape(nb * SCALE_BLOCK, kb * gran_k)[:n, :k].contiguous()
    return q, sf.reshape(nb, kb)


def per_channel_cast_to_fp8(x: Tensor, use_ue8m0: bool = False) -> tuple[Tensor, Tensor]:
    """Quantise ``x`` [M, K] to FP8 with a single scale per row, taken over all of K.

    Returns ``(x_fp8 [M, K], sf [M, 1] float32)``; scales as in :func:`per_token_cast_to_fp8`
    (an empty row gets the floor scale ``1e-4 / 448``). Note that DeepGEMM's function of the
    same name scales per column in 128-row blocks instead; this one is per row.
    """
    x = _check_cast_input(x)
    k = x.shape[1]
    # A zero-width row still needs one (padded) element so that it has an amax.
    padded = F.pad(x.float(), (0, 1)) if k == 0 else x.float()
    q, sf = _quantize(padded, (1,), bool(use_ue8m0))
    return q[:, :k].contiguous(), sf


# --------------------------------------------------------------------------------------------
# Accuracy metric
# --------------------------------------------------------------------------------------------


def calc_diff(x: Tensor, y: Tensor) -> float:
    """DeepGEMM's global dissimilarity of two tensors: ``1 - 2 <x, y> / (|x|^2 + |y|^2)``.

    It is 0 for identical tensors, about 1 for uncorrelated ones and 2 for ``y = -x``; it
    is scale-aware (``y = 2x`` gives 0.2), so one threshold works across problem sizes.
    Computed in float64; two all-zero tensors give 0.0.
    """
    if not isinstance(x, Tensor):
        raise InvalidArgumentError("x", "a torch.Tensor", type(x).__name__)
    if not isinstance(y, Tensor):
        raise InvalidArgumentError("y", "a torch.Tensor", type(y).__name__)
    if x.shape != y.shape:
        raise InvalidArgumentError(
            "y", f"a tensor of x's shape {tuple(x.shape)}", f"shape {tuple(y.shape)}"
        )
    if y.device != x.device:
        y = y.to(x.device)
    xd, yd = x.double(), y.double()
    denominator = float((xd * xd + yd * yd).sum())
    if denominator == 0.0:
        return 0.0
    return 1.0 - 2.0 * float((xd * yd).sum()) / denominator
