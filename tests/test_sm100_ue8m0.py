"""UE8M0 scale factors as the sm100 kernels consume them, checked on the CPU against plain
torch references written independently of dgreg.layout:

- rounding: an FP32 scale becomes the next power of two at or above it (2 ** ceil(log2 x),
  computed in float64, where log2 of a float32 is exact enough to round the right way);
- packing: K block 4j + i goes to byte i of int32 word j as its biased exponent (127 = 1.0),
  a partial last word padded with 1.0: the byte the kernel's MMA selects for K block kb is
  kb % 4 of word kb // 4. Scales below 2 ** -127, the smallest UE8M0 value, round up to it;
- layout: the words MN-major with the row count padded to 16 bytes, as the kernel's TMA map
  reads them (``dgreg_sm100.launch.mn_major_scales``);
- the 128 x 128 block scales of weights, expanded to one scale per row on the host, scale
  exactly as the blocks did.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("dgreg_sm100", reason="the dgreg-sm100 distribution is not installed")

from dgreg_sm100.launch import mn_major_scales, scale_dims

from dgreg.layout import (
    ceil_to_ue8m0,
    get_mn_major_tma_aligned_packed_ue8m0_tensor,
    pack_ue8m0_to_int,
    per_block_cast_to_fp8,
)
from dgreg.reference import dequantize
from dgreg.spec import Recipe

# positive float32 scales whose next power of two is still a float32 (at most 2 ** 127)
_SCALES = st.floats(min_value=2.0**-149, max_value=2.0**127, width=32, allow_subnormal=True)


def reference_round(x: torch.Tensor) -> torch.Tensor:
    """2 ** ceil(log2 x), in float64."""
    return torch.exp2(torch.ceil(torch.log2(x.double()))).float()


def reference_words(sf: torch.Tensor) -> list[list[int]]:
    """Rows of int32 words: byte i of word j is the UE8M0 code of K block 4 j + i."""
    out = []
    for row in reference_round(sf).double().tolist():
        codes = [max(int(math.log2(v)), -127) + 127 for v in row]
        codes += [127] * (-len(codes) % 4)
        words = [sum(codes[4 * j + i] << (8 * i) for i in range(4)) for j in range(len(codes) // 4)]
        out.append([w - 2**32 if w >= 2**31 else w for w in words])
    return out


@given(st.lists(_SCALES, min_size=1, max_size=32))
def test_rounding_is_up_to_the_next_power_of_two(values: list[float]) -> None:
    x = torch.tensor(values, dtype=torch.float32)
    assert torch.equal(ceil_to_ue8m0(x), reference_round(x))


@given(st.integers(1, 40), st.integers(1, 13), st.data())
@settings(max_examples=60, deadline=None)
def test_packing_matches_the_byte_order_the_kernel_reads(mn: int, kb: int, data) -> None:
    values = data.draw(st.lists(st.lists(_SCALES, min_size=kb, max_size=kb), min_size=mn,
                                max_size=mn))
    sf = torch.tensor(values, dtype=torch.float32)
    packed = get_mn_major_tma_aligned_packed_ue8m0_tensor(sf)
    assert packed.tolist() == reference_words(sf)
    # the byte of K block kb is kb % 4 of word kb // 4
    block = data.draw(st.integers(0, kb - 1))
    code = (packed[:, block // 4].long() >> (8 * (block % 4))) & 0xFF
    expected = reference_round(sf[:, block]).clamp(min=2.0**-127)
    assert torch.equal(torch.exp2(code.double() - 127).float(), expected)


@given(st.integers(1, 3), st.integers(1, 70), st.integers(1, 5), st.sampled_from(["k", "mn"]))
@settings(max_examples=60, deadline=None)
def test_scales_reach_the_kernel_mn_major_and_tma_aligned(groups, rows, words, given_as) -> None:
    shape = (groups, rows, words) if groups > 1 else (rows, words)
    sf = torch.randint(-(2**31), 2**31 - 1, shape, dtype=torch.int32)
    if given_as == "mn":  # already in the kernel's layout: no copy
        sf = mn_major_scales(sf.contiguous())
        assert mn_major_scales(sf) is sf
    out = mn_major_scales(sf)
    padded = -(-rows // 4) * 4
    assert torch.equal(out, sf)
    assert rows == 1 or out.stride(-2) == 1
    assert words == 1 or out.stride(-1) == padded
    dims, strides = scale_dims(out)
    assert dims == (groups, words, rows)
    assert strides[1:] == (padded if words == 1 else out.stride(-1), 1)
    assert all(s * 4 % 16 == 0 for s in strides[:2])  # TMA: 16-byte multiples


@given(st.integers(1, 300), st.integers(1, 600), st.integers(0, 2**16))
@settings(max_examples=25, deadline=None)
def test_block_scales_expanded_per_row_scale_like_the_blocks(n: int, k: int, seed: int) -> None:
    w = torch.randn(n, k, generator=torch.Generator().manual_seed(seed)) * 3
    w_fp8, blocks = per_block_cast_to_fp8(w, use_ue8m0=True)
    per_row = blocks.repeat_interleave(128, dim=0)[:n]
    packed = get_mn_major_tma_aligned_packed_ue8m0_tensor(per_row)
    as_blocks = dequantize(w_fp8, blocks, Recipe.R1D2D, block_rows=True, dtype=torch.float64)
    as_rows = dequantize(w_fp8, packed, Recipe.UE8M0, block_rows=False, dtype=torch.float64)
    assert torch.equal(as_blocks, as_rows)  # powers of two: nothing rounds


def test_fp32_scales_that_are_not_powers_of_two_do_not_pack() -> None:
    # Why the plugin refuses the 1d2d / 1d1d recipes: their scales are arbitrary FP32 values,
    # and packing them needs the (lossy) rounding first.
    with pytest.raises(ValueError, match="'sf' must be positive powers of two"):
        pack_ue8m0_to_int(torch.tensor([[3.0]]))
    word = pack_ue8m0_to_int(ceil_to_ue8m0(torch.tensor([[3.0]]))).item()
    assert word & 0xFF == 129  # 4.0 = 2 ** (129 - 127); bytes 1-3 pad with 1.0 (127)
