"""Tests for dgreg.layout: FP8 casts, UE8M0 packing, TMA-aligned layouts and calc_diff.

Everything runs on the CPU; the helpers are plain torch, so CPU results are the reference.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dgreg import layout
from dgreg.errors import InvalidArgumentError
from dgreg.layout import (
    align,
    calc_diff,
    ceil_div,
    ceil_to_ue8m0,
    get_col_major_tma_aligned_tensor,
    get_k_alignment_for_contiguous_layout,
    get_m_alignment_for_contiguous_layout,
    get_mk_alignment_for_contiguous_layout,
    get_mn_major_tma_aligned_packed_ue8m0_tensor,
    get_mn_major_tma_aligned_tensor,
    get_tma_aligned_size,
    pack_ue8m0_to_int,
    per_block_cast_to_fp8,
    per_channel_cast_to_fp8,
    per_token_cast_to_fp8,
    unpack_ue8m0_from_int,
)

FP8_MAX = 448.0


def _raises(argument: str):
    """Expect an InvalidArgumentError about ``argument``, named in the message too."""
    return pytest.raises(InvalidArgumentError, match=f"^'{argument}' must be ")


def _seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _is_power_of_two(value: float) -> bool:
    return value > 0 and math.frexp(value)[0] == 0.5


# --------------------------------------------------------------------------------------------
# Integer helpers
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "expected"), [(0, 4, 0), (1, 4, 1), (4, 4, 1), (5, 4, 2), (4097, 128, 33)]
)
def test_ceil_div(a: int, b: int, expected: int) -> None:
    assert ceil_div(a, b) == expected


@pytest.mark.parametrize(
    ("x", "multiple", "expected"), [(0, 4, 0), (1, 4, 4), (4, 4, 4), (4097, 4, 4100), (7, 1, 7)]
)
def test_align(x: int, multiple: int, expected: int) -> None:
    assert align(x, multiple) == expected


@given(st.integers(-(10**6), 10**6), st.integers(1, 1000))
def test_ceil_div_and_align_agree_with_math(a: int, b: int) -> None:
    quotient = ceil_div(a, b)
    assert (quotient - 1) * b < a <= quotient * b
    aligned = align(a, b)
    assert aligned % b == 0
    assert a <= aligned < a + b


@pytest.mark.parametrize(
    ("x", "element_size", "expected"),
    [(4097, 4, 4100), (4096, 4, 4096), (1, 4, 4), (0, 4, 0), (3, 2, 8), (17, 1, 32), (3, 8, 4)],
)
def test_get_tma_aligned_size(x: int, element_size: int, expected: int) -> None:
    assert get_tma_aligned_size(x, element_size) == expected
    assert (expected * element_size) % 16 == 0


def test_integer_helpers_reject_bad_arguments() -> None:
    with _raises("b"):
        ceil_div(3, 0)
    with _raises("b"):
        ceil_div(3, -2)
    with _raises("a"):
        ceil_div(3.5, 2)  # type: ignore[arg-type]
    with _raises("multiple"):
        align(3, 0)
    with _raises("element_size"):
        get_tma_aligned_size(16, 3)
    with _raises("element_size"):
        get_tma_aligned_size(16, 16)
    with _raises("x"):
        get_tma_aligned_size(-1, 4)
    with _raises("x"):
        get_tma_aligned_size(True, 4)  # type: ignore[arg-type]


def test_contiguous_layout_alignment_and_aliases() -> None:
    assert get_mk_alignment_for_contiguous_layout() == 128
    assert get_m_alignment_for_contiguous_layout() == 128
    assert get_k_alignment_for_contiguous_layout() == 128


def test_all_lists_every_public_name() -> None:
    for name in layout.__all__:
        assert callable(getattr(layout, name)), name
    public = {n for n in vars(layout) if not n.startswith("_") and callable(getattr(layout, n))}
    public -= {"annotations", "operator", "torch", "F", "Tensor", "InvalidArgumentError"}
    assert public == set(layout.__all__)


# --------------------------------------------------------------------------------------------
# TMA-aligned MN-major tensors
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mn", [1, 3, 4, 127, 4096, 4097])
@pytest.mark.parametrize("kb", [1, 5])
def test_mn_major_2d_strides_and_values(mn: int, kb: int) -> None:
    sf = torch.rand(mn, kb, generator=_seeded(mn * 10 + kb))
    out = get_mn_major_tma_aligned_tensor(sf)
    aligned = get_tma_aligned_size(mn, 4)
    assert aligned % 4 == 0 and mn <= aligned < mn + 4
    assert out.shape == sf.shape
    assert out.dtype == torch.float32
    assert out.stride() == (1, aligned)
    assert torch.equal(out, sf)
    # The padded rows of the last column are allocated as well.
    assert out.untyped_storage().nbytes() >= aligned * kb * 4


@pytest.mark.parametrize("mn", [4, 4097])
def test_mn_major_3d_strides_and_values(mn: int) -> None:
    sf = torch.rand(3, mn, 6, generator=_seeded(mn))
    out = get_mn_major_tma_aligned_tensor(sf)
    aligned = get_tma_aligned_size(mn, 4)
    assert out.shape == (3, mn, 6)
    assert out.stride() == (aligned * 6, 1, aligned)
    assert torch.equal(out, sf)
    assert out.untyped_storage().nbytes() >= 3 * aligned * 6 * 4


def test_mn_major_returns_input_when_already_aligned() -> None:
    sf = torch.rand(4097, 5, generator=_seeded(1))
    out = get_mn_major_tma_aligned_tensor(sf)
    assert out is not sf
    assert get_mn_major_tma_aligned_tensor(out) is out

    # Built by hand: [KB, aligned MN] row-major, transposed and cut to MN rows.
    batched = torch.rand(2, 7, 4100, generator=_seeded(2)).transpose(1, 2)[:, :4097, :]
    assert get_mn_major_tma_aligned_tensor(batched) is batched

    # MN a multiple of 4 and MN-major already: nothing to do.
    col_major = torch.rand(3, 8, generator=_seeded(3)).t()
    assert col_major.shape == (8, 3) and col_major.stride() == (1, 8)
    assert get_mn_major_tma_aligned_tensor(col_major) is col_major


def test_mn_major_copies_k_major_input_even_when_mn_is_aligned() -> None:
    sf = torch.rand(8, 3, generator=_seeded(4))  # row-major: strides (3, 1)
    out = get_mn_major_tma_aligned_tensor(sf)
    assert out is not sf
    assert out.stride() == (1, 8)
    assert torch.equal(out, sf)


def test_col_major_alias() -> None:
    assert get_col_major_tma_aligned_tensor is get_mn_major_tma_aligned_tensor


@pytest.mark.parametrize(
    ("sf", "argument"),
    [
        (torch.rand(8), "sf"),
        (torch.rand(2, 2, 8, 4), "sf"),
        (torch.rand(8, 4, dtype=torch.float64), "sf"),
        (torch.rand(8, 4).to(torch.bfloat16), "sf"),
        ([[1.0]], "sf"),
    ],
)
def test_mn_major_rejects_bad_input(sf: object, argument: str) -> None:
    with _raises(argument):
        get_mn_major_tma_aligned_tensor(sf)  # type: ignore[arg-type]
    with _raises(argument):
        get_mn_major_tma_aligned_packed_ue8m0_tensor(sf)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# ceil_to_ue8m0
# --------------------------------------------------------------------------------------------

_POSITIVE_FLOAT32 = st.floats(
    min_value=2.0**-149, max_value=2.0**127, width=32, allow_subnormal=True
)


@given(st.lists(_POSITIVE_FLOAT32, min_size=1, max_size=16))
def test_ceil_to_ue8m0_is_the_next_power_of_two(values: list[float]) -> None:
    x = torch.tensor(values, dtype=torch.float32)
    result = ceil_to_ue8m0(x)
    assert result.shape == x.shape and result.dtype == torch.float32
    for before, after in zip(x.tolist(), result.tolist(), strict=True):
        assert _is_power_of_two(after), (before, after)
        assert before <= after < 2 * before, (before, after)


@given(st.integers(-149, 127))
def test_ceil_to_ue8m0_keeps_powers_of_two(exponent: int) -> None:
    x = torch.tensor([2.0**exponent], dtype=torch.float32)
    assert ceil_to_ue8m0(x).item() == 2.0**exponent


def test_ceil_to_ue8m0_examples() -> None:
    # 2**23 + 1 is where 2**ceil(log2(x)) in float32 rounds down to 2**23.
    x = torch.tensor(
        [[1.0, 1.0 + 2**-23, 3.0, 0.75, 2.0**23 + 1], [448.0, 1e-4 / 448, 2.0**-130, 2.0**127, 5.0]]
    )
    expected = torch.tensor(
        [[1.0, 2.0, 4.0, 1.0, 2.0**24], [512.0, 2.0**-22, 2.0**-130, 2.0**127, 8.0]]
    )
    assert torch.equal(ceil_to_ue8m0(x), expected)
    assert ceil_to_ue8m0(torch.empty(0, 3)).shape == (0, 3)


@pytest.mark.parametrize(
    "bad", [0.0, -1.0, float("nan"), float("inf"), float("-inf"), 2.0**127 * 1.5]
)
def test_ceil_to_ue8m0_rejects_non_positive_or_huge_values(bad: float) -> None:
    with _raises("x"):
        ceil_to_ue8m0(torch.tensor([1.0, bad]))


def test_ceil_to_ue8m0_rejects_wrong_type() -> None:
    with _raises("x"):
        ceil_to_ue8m0(torch.tensor([1.0], dtype=torch.float64))
    with _raises("x"):
        ceil_to_ue8m0([1.0])  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# UE8M0 packing
# --------------------------------------------------------------------------------------------


def _signed32(word: int) -> int:
    return word - 2**32 if word >= 2**31 else word


def test_pack_byte_order_and_padding() -> None:
    sf = torch.tensor([[1.0, 2.0, 0.5, 4.0, 2.0**-10], [2.0**127, 2.0**-126, 1.0, 1.0, 8.0]])
    packed = pack_ue8m0_to_int(sf)
    assert packed.dtype == torch.int32 and packed.shape == (2, 2)
    first = 127 | 128 << 8 | 126 << 16 | 129 << 24
    assert packed[0, 0].item() == _signed32(first)
    # The partial second word is padded with code 127 (1.0).
    assert packed[0, 1].item() == _signed32(117 | 127 << 8 | 127 << 16 | 127 << 24)
    assert packed[1, 0].item() == _signed32(254 | 1 << 8 | 127 << 16 | 127 << 24)
    assert packed[1, 1].item() == _signed32(130 | 127 << 8 | 127 << 16 | 127 << 24)


def _powers_of_two(shape: tuple[int, ...], seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Random UE8M0 codes (0..254) and their float32 values."""
    codes = torch.randint(0, 255, shape, generator=_seeded(seed))
    values = torch.ldexp(torch.ones(shape, dtype=torch.float64), codes - 127).float()
    return codes, values


@pytest.mark.parametrize("shape", [(1, 1), (5, 4), (7, 13), (3, 4097, 6), (2, 3, 5, 9), (4, 0)])
def test_pack_unpack_round_trip(shape: tuple[int, ...]) -> None:
    _, sf = _powers_of_two(shape, seed=sum(shape))
    packed = pack_ue8m0_to_int(sf)
    assert packed.shape == (*shape[:-1], ceil_div(shape[-1], 4))
    unpacked = unpack_ue8m0_from_int(packed, shape[-1])
    assert unpacked.dtype == torch.float32
    assert torch.equal(unpacked, sf)
    # Without kb the padding comes back as 1.0.
    full = unpack_ue8m0_from_int(packed)
    assert full.shape == (*shape[:-1], 4 * ceil_div(shape[-1], 4))
    assert torch.equal(full[..., : shape[-1]], sf)
    assert bool((full[..., shape[-1] :] == 1.0).all())


def test_pack_accepts_non_contiguous_input() -> None:
    _, sf = _powers_of_two((6, 9), seed=7)
    assert torch.equal(pack_ue8m0_to_int(sf.t()), pack_ue8m0_to_int(sf.t().contiguous()))


@given(st.lists(st.integers(-(2**31), 2**31 - 1), min_size=1, max_size=8))
@settings(max_examples=50)
def test_unpack_pack_round_trip_on_words(words: list[int]) -> None:
    packed = torch.tensor([words], dtype=torch.int32)
    unpacked = unpack_ue8m0_from_int(packed)
    codes = [(w >> (8 * i)) & 0xFF for w in words for i in range(4)]
    for code, value in zip(codes, unpacked[0].tolist(), strict=True):
        if code == 255:
            assert math.isnan(value)
        else:
            assert value == 2.0 ** (code - 127)
    if 255 not in codes:
        assert torch.equal(pack_ue8m0_to_int(unpacked), packed)


@pytest.mark.parametrize("bad", [3.0, 0.75, 0.0, -2.0, float("nan"), float("inf"), 1e-45])
def test_pack_rejects_values_that_are_not_ue8m0(bad: float) -> None:
    sf = torch.ones(2, 5)
    sf[1, 3] = bad
    with pytest.raises(InvalidArgumentError, match=r"^'sf' must be positive powers of two") as info:
        pack_ue8m0_to_int(sf)
    assert "(1, 3)" in str(info.value)


def test_pack_and_unpack_reject_bad_tensors() -> None:
    with _raises("sf"):
        pack_ue8m0_to_int(torch.ones(4))
    with _raises("sf"):
        pack_ue8m0_to_int(torch.ones(2, 4, dtype=torch.float64))
    with _raises("sf"):
        pack_ue8m0_to_int("1.0")  # type: ignore[arg-type]
    with _raises("packed"):
        unpack_ue8m0_from_int(torch.ones(4, dtype=torch.int32))
    with _raises("packed"):
        unpack_ue8m0_from_int(torch.ones(2, 4, dtype=torch.int64))
    packed = torch.zeros(2, 3, dtype=torch.int32)
    for kb in (8, 13, -1):
        with _raises("kb"):
            unpack_ue8m0_from_int(packed, kb)
    with _raises("kb"):
        unpack_ue8m0_from_int(packed, 10.0)  # type: ignore[arg-type]
    for kb in (9, 10, 11, 12):
        assert unpack_ue8m0_from_int(packed, kb).shape == (2, kb)


@pytest.mark.parametrize("shape", [(4097, 7), (4096, 4), (3, 4097, 6), (2, 5, 1)])
def test_packed_ue8m0_tensor_layout(shape: tuple[int, ...]) -> None:
    sf = torch.rand(shape, generator=_seeded(sum(shape))) * 10 + 1e-3
    out = get_mn_major_tma_aligned_packed_ue8m0_tensor(sf)
    mn, kb = shape[-2], shape[-1]
    words = ceil_div(kb, 4)
    aligned = get_tma_aligned_size(mn, 4)
    assert out.dtype == torch.int32
    assert out.shape == (*shape[:-1], words)
    if len(shape) == 2:
        assert out.stride() == (1, aligned)
    else:
        assert out.stride() == (aligned * words, 1, aligned)
    rounded = ceil_to_ue8m0(sf)
    assert torch.equal(out, pack_ue8m0_to_int(rounded))
    assert torch.equal(unpack_ue8m0_from_int(out, kb), rounded)


def test_packed_ue8m0_tensor_rejects_non_positive_scales() -> None:
    with _raises("x"):
        get_mn_major_tma_aligned_packed_ue8m0_tensor(torch.zeros(4, 4))


# --------------------------------------------------------------------------------------------
# FP8 casts
# --------------------------------------------------------------------------------------------


def _reference_scales(
    x: torch.Tensor, rows: int, cols: int, use_ue8m0: bool
) -> torch.Tensor:
    """Scales computed block by block with Python loops, independent of the implementation."""
    xf = x.float()
    m, k = xf.shape
    out = torch.empty(ceil_div(m, rows), ceil_div(k, cols))
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            block = xf[i * rows : (i + 1) * rows, j * cols : (j + 1) * cols]
            amax = block.abs().max() if block.numel() else torch.tensor(0.0)
            scale = torch.clamp(amax, min=1e-4) / FP8_MAX
            out[i, j] = ceil_to_ue8m0(scale.reshape(1))[0] if use_ue8m0 else scale
    return out


def _expand(sf: torch.Tensor, rows: int, cols: int, shape: torch.Size) -> torch.Tensor:
    full = sf.repeat_interleave(rows, dim=0).repeat_interleave(cols, dim=1)
    return full[: shape[0], : shape[1]]


def _check_dequantisation(x: torch.Tensor, q: torch.Tensor, sf_full: torch.Tensor) -> None:
    xf = x.float()
    qf = q.float()
    assert bool((qf.abs() <= FP8_MAX).all())
    deq = qf * sf_full
    # e4m3: at most half an ulp, 2**-4 relative for normals; 2**-10 absolute (x sf) for
    # subnormals; a little slack for the float32 division.
    bound = xf.abs() * (2**-4 * 1.0001) + sf_full * 2**-10
    assert bool(((deq - xf).abs() <= bound).all())
    assert calc_diff(deq, xf) < 1e-3


@pytest.mark.parametrize("use_ue8m0", [False, True])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
@pytest.mark.parametrize(("m", "k", "gran_k"), [(4, 256, 128), (33, 200, 128), (5, 70, 32)])
def test_per_token_cast(
    m: int, k: int, gran_k: int, dtype: torch.dtype, use_ue8m0: bool
) -> None:
    x = (torch.randn(m, k, generator=_seeded(m + k)) * 3).to(dtype)
    q, sf = per_token_cast_to_fp8(x, use_ue8m0=use_ue8m0, gran_k=gran_k)
    assert q.dtype == torch.float8_e4m3fn and q.shape == (m, k) and q.is_contiguous()
    assert sf.dtype == torch.float32 and sf.shape == (m, ceil_div(k, gran_k))
    assert torch.equal(sf, _reference_scales(x, 1, gran_k, use_ue8m0))
    if use_ue8m0:
        assert all(_is_power_of_two(v) for v in sf.flatten().tolist())
    sf_full = _expand(sf, 1, gran_k, x.shape)
    _check_dequantisation(x, q, sf_full)
    # Each block's amax lands on (or, for UE8M0, within a factor 2 below) the FP8 maximum.
    block_max = _reference_scales(q.float(), 1, gran_k, False) * FP8_MAX
    if use_ue8m0:
        # amax / sf lies in (224, 448]; FP8 rounding may bring it down to 224 itself.
        assert bool(((block_max >= FP8_MAX / 2) & (block_max <= FP8_MAX)).all())
    else:
        assert bool((block_max == FP8_MAX).all())


@pytest.mark.parametrize("use_ue8m0", [False, True])
@pytest.mark.parametrize(("n", "k", "gran_k"), [(128, 256, 128), (130, 200, 128), (300, 64, 32)])
def test_per_block_cast(n: int, k: int, gran_k: int, use_ue8m0: bool) -> None:
    x = torch.randn(n, k, generator=_seeded(n * k)).to(torch.bfloat16)
    q, sf = per_block_cast_to_fp8(x, use_ue8m0=use_ue8m0, gran_k=gran_k)
    assert q.dtype == torch.float8_e4m3fn and q.shape == (n, k) and q.is_contiguous()
    assert sf.dtype == torch.float32 and sf.shape == (ceil_div(n, 128), ceil_div(k, gran_k))
    assert torch.equal(sf, _reference_scales(x, 128, gran_k, use_ue8m0))
    _check_dequantisation(x, q, _expand(sf, 128, gran_k, x.shape))


def test_cast_of_zero_blocks_uses_the_amax_floor() -> None:
    x = torch.zeros(3, 300)
    x[1, 5] = 2.0
    q, sf = per_token_cast_to_fp8(x)
    floor = torch.tensor(1e-4) / FP8_MAX
    assert sf[0, 0] == floor and sf[1, 1] == floor and sf[1, 0] == 2.0 / FP8_MAX
    assert q[1, 5].float().item() == FP8_MAX
    assert int((q.float() != 0).sum()) == 1
    _, sf_block = per_block_cast_to_fp8(torch.zeros(5, 5), use_ue8m0=True)
    assert sf_block.item() == ceil_to_ue8m0(floor.reshape(1)).item()


def test_cast_accepts_non_contiguous_input() -> None:
    x = torch.randn(256, 96, generator=_seeded(9))
    for cast in (per_token_cast_to_fp8, per_block_cast_to_fp8):
        q, sf = cast(x.t())
        q_ref, sf_ref = cast(x.t().contiguous())
        assert torch.equal(q.float(), q_ref.float()) and torch.equal(sf, sf_ref)


def test_cast_of_empty_tensors() -> None:
    q, sf = per_token_cast_to_fp8(torch.empty(0, 256))
    assert q.shape == (0, 256) and sf.shape == (0, 2)
    q, sf = per_block_cast_to_fp8(torch.empty(3, 0))
    assert q.shape == (3, 0) and sf.shape == (1, 0)


@pytest.mark.parametrize("use_ue8m0", [False, True])
def test_per_channel_cast(use_ue8m0: bool) -> None:
    x = torch.randn(17, 300, generator=_seeded(17)) * torch.arange(1, 18).reshape(17, 1)
    q, sf = per_channel_cast_to_fp8(x, use_ue8m0=use_ue8m0)
    assert q.shape == (17, 300) and q.dtype == torch.float8_e4m3fn
    assert sf.shape == (17, 1) and sf.dtype == torch.float32
    assert torch.equal(sf, _reference_scales(x, 1, 300, use_ue8m0))
    _check_dequantisation(x, q, sf.expand(17, 300))
    q, sf = per_channel_cast_to_fp8(torch.empty(4, 0))
    assert q.shape == (4, 0) and sf.shape == (4, 1)


_CASTS = [per_token_cast_to_fp8, per_block_cast_to_fp8, per_channel_cast_to_fp8]


@pytest.mark.parametrize("cast", _CASTS)
@pytest.mark.parametrize(
    "x",
    [
        torch.randn(128),
        torch.randn(2, 128, 128),
        torch.ones(4, 128, dtype=torch.int32),
        torch.ones(4, 128, dtype=torch.float64),
        torch.ones(4, 128, dtype=torch.float16),
        torch.ones(4, 128).to(torch.float8_e4m3fn),
        [[1.0, 2.0]],
    ],
    ids=["1d", "3d", "int32", "float64", "float16", "fp8", "list"],
)
def test_casts_reject_bad_input(cast, x: object) -> None:
    with _raises("x"):
        cast(x)


@pytest.mark.parametrize("cast", [per_token_cast_to_fp8, per_block_cast_to_fp8])
@pytest.mark.parametrize("gran_k", [0, -128, 128.0, "128", True])
def test_casts_reject_bad_gran_k(cast, gran_k: object) -> None:
    with _raises("gran_k"):
        cast(torch.ones(4, 128), gran_k=gran_k)


# --------------------------------------------------------------------------------------------
# calc_diff
# --------------------------------------------------------------------------------------------


def test_calc_diff_known_values() -> None:
    x = torch.randn(64, 64, generator=_seeded(11))
    assert calc_diff(x, x) == 0.0
    assert calc_diff(x, -x) == pytest.approx(2.0, abs=1e-12)
    assert calc_diff(x, 2 * x) == pytest.approx(0.2, abs=1e-12)
    assert calc_diff(torch.zeros(3, 3), torch.zeros(3, 3)) == 0.0
    assert calc_diff(torch.zeros(3), torch.ones(3)) == pytest.approx(1.0)
    e0, e1 = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    assert calc_diff(e0, e1) == 1.0
    y = torch.randn(64, 64, generator=_seeded(12))
    assert abs(calc_diff(x, y) - 1.0) < 0.1  # independent noise is nearly orthogonal


def test_calc_diff_mixed_dtypes_and_precision() -> None:
    x = torch.randn(1000, generator=_seeded(13))
    assert isinstance(calc_diff(x.bfloat16(), x), float)
    assert 0 < calc_diff(x.bfloat16(), x) < 1e-4
    # float64 accumulation: a tiny perturbation is still seen.
    big = torch.full((10**5,), 1e3, dtype=torch.float64)
    assert calc_diff(big, big + 1e-3) > 0


@given(
    st.lists(st.floats(-1e3, 1e3, width=32), min_size=1, max_size=32),
    st.lists(st.floats(-1e3, 1e3, width=32), min_size=1, max_size=32),
)
def test_calc_diff_is_symmetric_and_bounded(a: list[float], b: list[float]) -> None:
    size = min(len(a), len(b))
    x, y = torch.tensor(a[:size]), torch.tensor(b[:size])
    diff = calc_diff(x, y)
    assert diff == pytest.approx(calc_diff(y, x), abs=1e-12)
    assert -1e-12 <= diff <= 2 + 1e-12


def test_calc_diff_rejects_bad_input() -> None:
    with _raises("y"):
        calc_diff(torch.ones(3, 4), torch.ones(4, 3))
    with _raises("y"):
        calc_diff(torch.ones(3), [1.0, 1.0, 1.0])  # type: ignore[arg-type]
    with _raises("x"):
        calc_diff([1.0], torch.ones(1))  # type: ignore[arg-type]
