"""The torch reference against an independent float64 oracle, for every spec.

The oracle (``tests/oracle.py``) never calls ``dgreg.reference``: it dequantises with
explicit per-element index arithmetic (and decodes packed UE8M0 words byte by byte) and
multiplies in float64. The reference computes in float32 and rounds to D's dtype, so results
are compared with ``calc_diff < 1e-5`` plus an element-wise bound sized for D's rounding.

Rows a grouped GEMM must not write are poisoned with NaN first and must stay NaN.
"""

from __future__ import annotations

import warnings

import pytest
import torch
from oracle import dequant, k_blocks, magnitude, oracle_dense

import dgreg
from dgreg import layout as L
from dgreg.errors import FallbackWarning

FP8 = torch.float8_e4m3fn
BF16 = torch.bfloat16
FP32 = torch.float32

pytestmark = pytest.mark.filterwarnings("ignore::dgreg.errors.FallbackWarning")


# -- inputs ------------------------------------------------------------------------------------

def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _operand(shape: tuple[int, ...], dtype: torch.dtype, g: torch.Generator) -> torch.Tensor:
    x = torch.randn(*shape, generator=g)
    if dtype == FP8:
        return (x * 64).clamp(-448, 448).to(FP8)
    return x.to(dtype)


def _scales(shape: tuple[int, ...], g: torch.Generator) -> torch.Tensor:
    """Positive float32 scales spread over a few octaves (so a wrong block shows)."""
    return torch.rand(*shape, generator=g) * 4 + 0.25


def _ue8m0(shape: tuple[int, ...], g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(float32 power-of-two scales, packed int32 words) built with dgreg.layout helpers."""
    sf = L.ceil_to_ue8m0(_scales(shape, g))
    return sf, L.pack_ue8m0_to_int(sf)


# -- checking ----------------------------------------------------------------------------------

def check(d: torch.Tensor, expected: torch.Tensor, mag: torch.Tensor) -> None:
    """calc_diff < 1e-5 and |d - o| within D's rounding plus float32 accumulation error."""
    got = d.to(torch.float64)
    assert got.shape == expected.shape
    assert torch.isfinite(got).all(), "non-finite values in computed rows"
    assert L.calc_diff(got, expected) < 1e-5
    rel = 2.0 ** -8 if d.dtype == BF16 else 2.0 ** -20
    bound = rel * expected.abs() + 1e-5 * mag + 1e-30
    err = (got - expected).abs()
    worst = (err / bound).max().item() if err.numel() else 0.0
    assert worst <= 1.0, f"error {err.max().item():.3g} exceeds the bound (ratio {worst:.3g})"


# -- dense -------------------------------------------------------------------------------------

M, N, K = 32, 144, 272  # K not a multiple of 128 (KB = 3), N spans two 128-row blocks


def _fp8_dense(recipe: str, m: int, n: int, k: int, seed: int = 0):
    g = _gen(seed)
    a, b = _operand((m, k), FP8, g), _operand((n, k), FP8, g)
    if recipe == "ue8m0":
        _, sa = _ue8m0((m, k_blocks(k)), g)
        _, sb = _ue8m0((n, k_blocks(k)), g)
    else:
        sa = _scales((m, k_blocks(k)), g)
        sb = _scales((k_blocks(n) if recipe == "1d2d" else n, k_blocks(k)), g)
    return a, b, sa, sb


@pytest.mark.parametrize("d_dtype", [BF16, FP32])
@pytest.mark.parametrize("recipe", ["1d2d", "1d1d", "ue8m0"])
def test_dense_fp8_recipes(recipe: str, d_dtype: torch.dtype) -> None:
    a, b, sa, sb = _fp8_dense(recipe, M, N, K)
    d = torch.full((M, N), float("nan"), dtype=d_dtype)
    out = dgreg.gemm(a, b, d, a_scale=sa, b_scale=sb)
    assert out is d
    check(d, oracle_dense(a, b, sa, sb, recipe), magnitude(a, b, sa, sb, recipe))


@pytest.mark.parametrize("recipe", ["1d2d", "1d1d", "ue8m0"])
def test_dense_fp8_explicit_recipe(recipe: str) -> None:
    a, b, sa, sb = _fp8_dense(recipe, M, N, K, seed=1)
    d = dgreg.gemm(a, b, a_scale=sa, b_scale=sb, recipe=recipe)
    check(d, oracle_dense(a, b, sa, sb, recipe), magnitude(a, b, sa, sb, recipe))


def test_dense_fp8_tma_aligned_scale_layouts() -> None:
    """Scales in the MN-major TMA layout the kernels read are accepted as-is."""
    a, b, sa, sb = _fp8_dense("1d1d", M, N, K, seed=2)
    sa_mn = L.get_mn_major_tma_aligned_tensor(sa)
    assert sa_mn.stride(0) == 1
    d = dgreg.gemm(a, b, a_scale=sa_mn, b_scale=sb)
    check(d, oracle_dense(a, b, sa, sb, "1d1d"), magnitude(a, b, sa, sb, "1d1d"))

    g = _gen(3)
    sa_f = L.ceil_to_ue8m0(_scales((M, k_blocks(K)), g))
    sb_f = L.ceil_to_ue8m0(_scales((N, k_blocks(K)), g))
    pa = L.get_mn_major_tma_aligned_packed_ue8m0_tensor(sa_f)
    pb = L.get_mn_major_tma_aligned_packed_ue8m0_tensor(sb_f)
    d = dgreg.gemm(a, b, a_scale=pa, b_scale=pb)
    check(d, oracle_dense(a, b, pa, pb, "ue8m0"), magnitude(a, b, pa, pb, "ue8m0"))


@pytest.mark.parametrize("d_dtype", [BF16, FP32])
def test_dense_bf16(d_dtype: torch.dtype) -> None:
    g = _gen(4)
    a, b = _operand((M, K), BF16, g), _operand((N, K), BF16, g)
    d = dgreg.gemm(a, b, out_dtype=d_dtype)
    assert d.dtype == d_dtype
    check(d, oracle_dense(a, b), magnitude(a, b))


def _pass(x: torch.Tensor, transposed: bool, flip_storage: bool) -> torch.Tensor:
    """How the caller passes logical [R, K] ``x``: ``[K, R]`` when transposed; the storage
    is the natural one for that shape (row-major) unless ``flip_storage``."""
    shaped = x.t() if transposed else x
    if flip_storage:
        return shaped.t().contiguous().t()  # same shape and values, the other major-ness
    return shaped.contiguous()


@pytest.mark.parametrize("flip_b", [False, True], ids=["b-natural", "b-flipped"])
@pytest.mark.parametrize("flip_a", [False, True], ids=["a-natural", "a-flipped"])
@pytest.mark.parametrize("layout", ["NT", "NN", "TN", "TT"])
@pytest.mark.parametrize("kind", ["fp8-1d2d", "fp8-1d1d", "bf16"])
def test_dense_layouts(kind: str, layout: str, flip_a: bool, flip_b: bool) -> None:
    """All four layouts, each operand in both storage orders (major-ness read from strides)."""
    a_t, b_t = layout[0] == "T", layout[1] == "N"
    if kind == "bf16":
        g = _gen(5)
        a, b = _operand((M, K), BF16, g), _operand((N, K), BF16, g)
        sa = sb = None
        recipe = "none"
    else:
        recipe = kind.split("-")[1]
        a, b, sa, sb = _fp8_dense(recipe, M, N, K, seed=6)
    kwargs = {}
    if sa is not None:
        kwargs = {"a_scale": sa.t().contiguous() if a_t else sa,
                  "b_scale": sb.t().contiguous() if b_t else sb}
    d = dgreg.gemm(_pass(a, a_t, flip_a), _pass(b, b_t, flip_b), layout=layout, **kwargs)
    check(d, oracle_dense(a, b, sa, sb, recipe), magnitude(a, b, sa, sb, recipe))


@pytest.mark.parametrize("layout", ["NT", "NN", "TN", "TT"])
def test_dense_layouts_ue8m0(layout: str) -> None:
    a_t, b_t = layout[0] == "T", layout[1] == "N"
    a, b, sa, sb = _fp8_dense("ue8m0", M, N, K, seed=7)
    d = dgreg.gemm(_pass(a, a_t, False), _pass(b, b_t, False), layout=layout,
                   a_scale=sa.t() if a_t else sa, b_scale=sb.t() if b_t else sb)
    check(d, oracle_dense(a, b, sa, sb, "ue8m0"), magnitude(a, b, sa, sb, "ue8m0"))


@pytest.mark.parametrize(("d_dtype", "c_dtype"), [(BF16, BF16), (BF16, FP32), (FP32, FP32)])
@pytest.mark.parametrize("kind", ["fp8", "bf16"])
def test_dense_accumulate(kind: str, d_dtype: torch.dtype, c_dtype: torch.dtype) -> None:
    g = _gen(8)
    if kind == "fp8":
        a, b, sa, sb = _fp8_dense("1d2d", M, N, K, seed=9)
        recipe, kwargs = "1d2d", {"a_scale": sa, "b_scale": sb}
    else:
        a, b = _operand((M, K), BF16, g), _operand((N, K), BF16, g)
        sa = sb = None
        recipe, kwargs = "none", {}
    c = (torch.randn(M, N, generator=g) * 100).to(c_dtype)
    c_before = c.clone()
    d = torch.empty(M, N, dtype=d_dtype)
    assert dgreg.gemm(a, b, d, c=c, **kwargs) is d
    assert torch.equal(c, c_before), "c must not be modified"
    check(d, oracle_dense(a, b, sa, sb, recipe, c), magnitude(a, b, sa, sb, recipe, c))


@pytest.mark.parametrize("d_dtype", [BF16, FP32])
def test_dense_accumulate_in_place(d_dtype: torch.dtype) -> None:
    """``c is d``: D += A @ B in place."""
    a, b, sa, sb = _fp8_dense("1d1d", M, N, K, seed=10)
    d = (torch.randn(M, N, generator=_gen(11)) * 50).to(d_dtype)
    c_before = d.clone()
    assert dgreg.gemm(a, b, d, c=d, a_scale=sa, b_scale=sb) is d
    check(d, oracle_dense(a, b, sa, sb, "1d1d", c_before),
          magnitude(a, b, sa, sb, "1d1d", c_before))


@pytest.mark.parametrize("k", [16, 112, 144, 400, 656])
@pytest.mark.parametrize("recipe", ["1d2d", "1d1d", "ue8m0"])
def test_dense_fp8_k_not_multiple_of_128(recipe: str, k: int) -> None:
    """Partial last K block; for ue8m0 K = 656 spans 6 blocks in 2 packed words."""
    a, b, sa, sb = _fp8_dense(recipe, M, N, k, seed=12)
    d = dgreg.gemm(a, b, a_scale=sa, b_scale=sb, out_dtype=FP32)
    check(d, oracle_dense(a, b, sa, sb, recipe), magnitude(a, b, sa, sb, recipe))


@pytest.mark.parametrize("kind", ["fp8", "bf16"])
def test_dense_m_equals_1(kind: str) -> None:
    if kind == "fp8":
        a, b, sa, sb = _fp8_dense("1d2d", 1, N, K, seed=13)
        d = dgreg.gemm(a, b, a_scale=sa, b_scale=sb)
        check(d, oracle_dense(a, b, sa, sb, "1d2d"), magnitude(a, b, sa, sb, "1d2d"))
    else:
        g = _gen(14)
        a, b = _operand((1, 40), BF16, g), _operand((24, 40), BF16, g)
        for layout in ("NT", "TN", "NN", "TT"):
            aa = a.t().contiguous() if layout[0] == "T" else a
            bb = b.t().contiguous() if layout[1] == "N" else b
            check(dgreg.gemm(aa, bb, layout=layout), oracle_dense(a, b), magnitude(a, b))


@pytest.mark.parametrize("with_c", [False, True])
@pytest.mark.parametrize("kind", ["fp8", "bf16"])
def test_dense_k_zero(kind: str, with_c: bool) -> None:
    """K = 0: D = C, or zeros (d is poisoned first, so it must really be written)."""
    g = _gen(15)
    dtype = FP8 if kind == "fp8" else BF16
    a, b = torch.empty(M, 0, dtype=dtype), torch.empty(N, 0, dtype=dtype)
    kwargs = {"a_scale": torch.empty(M, 0), "b_scale": torch.empty(2, 0)} if kind == "fp8" else {}
    d = torch.full((M, N), float("nan"), dtype=FP32)
    c = torch.randn(M, N, generator=g) if with_c else None
    assert dgreg.gemm(a, b, d, c=c, **kwargs) is d
    expected = c if with_c else torch.zeros(M, N)
    assert torch.equal(d, expected)


@pytest.mark.parametrize(("m", "n"), [(0, N), (M, 0), (0, 0)])
@pytest.mark.parametrize("kind", ["fp8", "bf16"])
def test_dense_empty_early_return(kind: str, m: int, n: int) -> None:
    g = _gen(16)
    if kind == "fp8":
        a, b, sa, sb = _fp8_dense("1d1d", m, n, K, seed=17)
        kwargs = {"a_scale": sa, "b_scale": sb}
    else:
        a, b = _operand((m, K), BF16, g), _operand((n, K), BF16, g)
        kwargs = {}
    d = torch.empty(m, n, dtype=BF16)
    assert dgreg.gemm(a, b, d, **kwargs) is d
    fresh = dgreg.gemm(a, b, **kwargs)
    assert fresh.shape == (m, n) and fresh.dtype == BF16


def test_fallback_warning_is_the_only_warning() -> None:
    """The reference path emits only the documented FallbackWarning."""
    g = _gen(18)
    a, b = _operand((4, 32), BF16, g), _operand((8, 32), BF16, g)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dgreg.gemm(a, b)
    assert all(issubclass(w.category, FallbackWarning) for w in caught), [str(w) for w in caught]


# -- M-grouped contiguous ----------------------------------------------------------------------

G = 3
NG, KG = 48, 272


def _grouped_operands(kind: str, m_sum: int, *, nn: bool = False, seed: int = 20):
    """a [M_sum, K], logical b [G, N, K] and logical scales for ``kind``."""
    g = _gen(seed)
    if kind == "bf16":
        return (_operand((m_sum, KG), BF16, g), _operand((G, NG, KG), BF16, g), None, None,
                "none")
    recipe = kind.split("-")[1]
    a, b = _operand((m_sum, KG), FP8, g), _operand((G, NG, KG), FP8, g)
    if recipe == "ue8m0":
        _, sa = _ue8m0((m_sum, k_blocks(KG)), g)
        _, sb = _ue8m0((G, NG, k_blocks(KG)), g)
    else:
        sa = _scales((m_sum, k_blocks(KG)), g)
        sb = _scales((G, k_blocks(NG) if recipe == "1d2d" else NG, k_blocks(KG)), g)
    return a, b, sa, sb, recipe


def _check_rows(d: torch.Tensor, a, b, sa, sb, recipe: str, ids: list[int]) -> None:
    """Row i of d is row i of A times expert ids[i]'s B; rows with id -1 must still be NaN."""
    expected = torch.full((a.shape[0], b.shape[1]), float("nan"), dtype=torch.float64)
    mag = torch.zeros(a.shape[0], b.shape[1], dtype=torch.float64)
    for gi in range(b.shape[0]):
        rows = [i for i, x in enumerate(ids) if x == gi]
        if rows:
            r = torch.tensor(rows)
            s_a, s_b = None if sa is None else sa[r], None if sb is None else sb[gi]
            expected[r] = oracle_dense(a[r], b[gi], s_a, s_b, recipe)
            mag[r] = magnitude(a[r], b[gi], s_a, s_b, recipe)
    skipped = torch.isnan(expected).all(dim=-1)
    assert torch.isnan(d[skipped].float()).all(), "rows outside every group were written"
    check(d[~skipped], expected[~skipped], mag[~skipped])


def _ids_from_sizes(sizes: list[int], m_sum: int) -> list[int]:
    ids, pos = [-1] * m_sum, 0
    for gi, s in enumerate(sizes):
        ids[pos:pos + s] = [gi] * s
        pos += -(-s // 128) * 128
    return ids


@pytest.mark.parametrize("kind", ["fp8-1d2d", "fp8-1d1d", "fp8-ue8m0", "bf16"])
def test_m_contiguous_padding_rows_untouched(kind: str) -> None:
    sizes = [100, 0, 130]  # unaligned sizes, an empty group; -1 padding after each
    m_sum = 384
    ids = _ids_from_sizes(sizes, m_sum)
    a, b, sa, sb, recipe = _grouped_operands(kind, m_sum)
    d = torch.full((m_sum, NG), float("nan"), dtype=BF16)
    out = dgreg.m_grouped_gemm_contiguous(
        a, b, d, grouped_layout=torch.tensor(ids, dtype=torch.int32), a_scale=sa, b_scale=sb)
    assert out is d
    _check_rows(d, a, b, sa, sb, recipe, ids)


def test_m_contiguous_groups_out_of_order() -> None:
    """Blocks may list experts in any order, and an expert may own several blocks."""
    ids = [2] * 128 + [0] * 60 + [-1] * 68 + [2] * 5 + [-1] * 123
    a, b, sa, sb, recipe = _grouped_operands("fp8-1d2d", len(ids), seed=21)
    d = torch.full((len(ids), NG), float("nan"), dtype=FP32)
    dgreg.m_grouped_gemm_contiguous(a, b, d, grouped_layout=torch.tensor(ids, dtype=torch.int32),
                                    a_scale=sa, b_scale=sb)
    _check_rows(d, a, b, sa, sb, recipe, ids)


def _psum_ends(sizes: list[int]) -> list[int]:
    ends, start = [], 0
    for s in sizes:
        ends.append(start + s)
        start = -(-(start + s) // 128) * 128
    return ends


@pytest.mark.parametrize("kind", ["fp8-1d2d", "fp8-ue8m0", "bf16"])
def test_m_contiguous_psum_layout(kind: str) -> None:
    sizes = [37, 0, 200]  # unaligned, with an empty group in the middle
    ends = _psum_ends(sizes)
    assert ends == [37, 128, 328]
    m_sum = 400  # rows 328.. belong to no group
    ids = _ids_from_sizes(sizes, m_sum)
    a, b, sa, sb, recipe = _grouped_operands(kind, m_sum, seed=22)
    d = torch.full((m_sum, NG), float("nan"), dtype=BF16)
    out = dgreg.m_grouped_gemm_contiguous(
        a, b, d, grouped_layout=torch.tensor(ends, dtype=torch.int32), use_psum_layout=True,
        a_scale=sa, b_scale=sb)
    assert out is d
    _check_rows(d, a, b, sa, sb, recipe, ids)


def test_m_contiguous_psum_first_group_empty() -> None:
    sizes = [0, 5, 128]
    ends = _psum_ends(sizes)
    assert ends == [0, 5, 256]
    ids = _ids_from_sizes(sizes, 256)
    a, b, sa, sb, recipe = _grouped_operands("bf16", 256, seed=23)
    d = torch.full((256, NG), float("nan"), dtype=FP32)
    dgreg.m_grouped_gemm_contiguous(a, b, d, grouped_layout=torch.tensor(ends, dtype=torch.int32),
                                    use_psum_layout=True)
    _check_rows(d, a, b, sa, sb, recipe, ids)


@pytest.mark.parametrize("kind", ["fp8-1d2d", "fp8-1d1d", "bf16"])
def test_m_contiguous_nn_layout(kind: str) -> None:
    """NN: b passed as [G, K, N] (and its scales as [G, KB, NB|N])."""
    sizes = [128, 3, 60]
    m_sum = 384
    ids = _ids_from_sizes(sizes, m_sum)
    a, b, sa, sb, recipe = _grouped_operands(kind, m_sum, seed=24)
    b_kn = b.transpose(1, 2).contiguous()
    sb_kn = None if sb is None else sb.transpose(1, 2).contiguous()
    d = torch.full((m_sum, NG), float("nan"), dtype=BF16)
    dgreg.m_grouped_gemm_contiguous(a, b_kn, d, grouped_layout=torch.tensor(ids, dtype=torch.int32),
                                    layout="NN", a_scale=sa, b_scale=sb_kn)
    _check_rows(d, a, b, sa, sb, recipe, ids)


def test_m_contiguous_k_zero() -> None:
    ids = [0] * 10 + [-1] * 118
    d = torch.full((128, NG), float("nan"), dtype=BF16)
    dgreg.m_grouped_gemm_contiguous(torch.empty(128, 0, dtype=BF16),
                                    torch.empty(G, NG, 0, dtype=BF16), d,
                                    grouped_layout=torch.tensor(ids, dtype=torch.int32))
    assert torch.equal(d[:10].float(), torch.zeros(10, NG))
    assert torch.isnan(d[10:].float()).all()


# -- M-grouped masked --------------------------------------------------------------------------

@pytest.mark.parametrize("d_dtype", [BF16, FP32])
@pytest.mark.parametrize("kind", ["fp8-1d2d", "fp8-1d1d", "fp8-ue8m0", "bf16"])
def test_m_masked(kind: str, d_dtype: torch.dtype) -> None:
    m_max = 64
    masked = [0, m_max, 17]
    g = _gen(30)
    dtype = BF16 if kind == "bf16" else FP8
    a, b = _operand((G, m_max, KG), dtype, g), _operand((G, NG, KG), dtype, g)
    recipe = "none" if kind == "bf16" else kind.split("-")[1]
    if recipe == "ue8m0":
        _, sa = _ue8m0((G, m_max, k_blocks(KG)), g)
        _, sb = _ue8m0((G, NG, k_blocks(KG)), g)
    elif recipe == "none":
        sa = sb = None
    else:
        sa = _scales((G, m_max, k_blocks(KG)), g)
        sb = _scales((G, k_blocks(NG) if recipe == "1d2d" else NG, k_blocks(KG)), g)
    d = torch.full((G, m_max, NG), float("nan"), dtype=d_dtype)
    out = dgreg.m_grouped_gemm_masked(a, b, d, masked_m=torch.tensor(masked, dtype=torch.int32),
                                      expected_m=32, a_scale=sa, b_scale=sb)
    assert out is d
    for gi, cnt in enumerate(masked):
        assert torch.isnan(d[gi, cnt:].float()).all(), f"group {gi}: rows past masked_m written"
        if cnt:
            s_a = None if sa is None else sa[gi, :cnt]
            s_b = None if sb is None else sb[gi]
            check(d[gi, :cnt], oracle_dense(a[gi, :cnt], b[gi], s_a, s_b, recipe),
                  magnitude(a[gi, :cnt], b[gi], s_a, s_b, recipe))


# -- K-grouped contiguous ----------------------------------------------------------------------

def _oracle_k_grouped(a, b, sa, sb, recipe, ks, c):
    """a [sum K, M], b [sum K, N] MN-major; scales [sum KB(, packed), M|N]."""
    groups, m, n = len(ks), a.shape[1], b.shape[1]
    a_log, b_log = a.t(), b.t()
    sa_log = None if sa is None else sa.t()
    sb_log = None if sb is None else sb.t()
    ad = dequant(a_log, sa_log, recipe)
    bd = dequant(b_log, sb_log, recipe)
    out = torch.zeros(groups, m, n, dtype=torch.float64)
    mag = torch.zeros(groups, m, n, dtype=torch.float64)
    start = 0
    for gi, kg in enumerate(ks):
        for kk in range(start, start + kg):
            out[gi] += torch.outer(ad[:, kk], bd[:, kk])
            mag[gi] += torch.outer(ad[:, kk].abs(), bd[:, kk].abs())
        start += kg
    if c is not None:
        out += c.to(torch.float64)
        mag += c.to(torch.float64).abs()
    return out, mag


@pytest.mark.parametrize("with_c", ["none", "c", "c-is-d"])
@pytest.mark.parametrize("kind", ["fp8-1d1d", "fp8-ue8m0", "bf16"])
def test_k_grouped(kind: str, with_c: str) -> None:
    g = _gen(40)
    m, n = 16, 32
    if kind == "fp8-ue8m0":
        ks = [512, 0, 512]
    elif kind == "fp8-1d1d":
        ks = [128, 0, 256]
    else:
        ks = [40, 0, 24, 8]
    total = sum(ks)
    dtype = BF16 if kind == "bf16" else FP8
    a, b = _operand((total, m), dtype, g), _operand((total, n), dtype, g)
    recipe = "none" if kind == "bf16" else kind.split("-")[1]
    if recipe == "1d1d":
        sa, sb = _scales((total // 128, m), g), _scales((total // 128, n), g)
    elif recipe == "ue8m0":
        _, pa = _ue8m0((m, total // 128), g)
        _, pb = _ue8m0((n, total // 128), g)
        sa, sb = pa.t(), pb.t()
    else:
        sa = sb = None
    c = torch.randn(len(ks), m, n, generator=g) * 10 if with_c != "none" else None
    if with_c == "c-is-d":
        d = c.clone()
        expected, mag = _oracle_k_grouped(a, b, sa, sb, recipe, ks, d.clone())
        out = dgreg.k_grouped_gemm_contiguous(a, b, d, ks=ks, c=d, a_scale=sa, b_scale=sb)
    else:
        d = torch.full((len(ks), m, n), float("nan"))
        expected, mag = _oracle_k_grouped(a, b, sa, sb, recipe, ks, c)
        out = dgreg.k_grouped_gemm_contiguous(a, b, d, ks=ks, c=c, a_scale=sa, b_scale=sb,
                                              ks_tensor=torch.tensor(ks, dtype=torch.int32))
    assert out is d
    check(d, expected, mag)
    # the empty group is exactly C (or zero)
    assert torch.equal(d[1], c[1] if c is not None else torch.zeros(m, n))


def test_k_grouped_allocates_fp32_d() -> None:
    g = _gen(41)
    ks = [8, 16]
    a, b = _operand((24, 8), BF16, g), _operand((24, 16), BF16, g)
    d = dgreg.k_grouped_gemm_contiguous(a, b, ks=ks)
    assert d.dtype == FP32 and d.shape == (2, 8, 16)
    expected, mag = _oracle_k_grouped(a, b, None, None, "none", ks, None)
    check(d, expected, mag)


def test_k_grouped_all_groups_empty() -> None:
    """sum K = 0: D = C."""
    c = torch.randn(2, 8, 16, generator=_gen(42))
    d = torch.full((2, 8, 16), float("nan"))
    dgreg.k_grouped_gemm_contiguous(torch.empty(0, 8, dtype=BF16), torch.empty(0, 16, dtype=BF16),
                                    d, ks=[0, 0], c=c)
    assert torch.equal(d, c)


@pytest.mark.parametrize("case", ["m_contiguous-M0", "m_contiguous-N0", "m_masked-M0",
                                  "m_masked-N0", "k_grouped-M0", "k_grouped-N0"])
def test_grouped_empty_early_return(case: str) -> None:
    """M = 0 or N = 0: nothing to compute; the given d comes back as it was."""
    g = _gen(50)
    op, which = case.split("-")
    m0, n0 = (0, 16) if which == "M0" else (16, 0)
    if op == "m_contiguous":
        d = torch.empty(m0, n0, dtype=BF16)
        out = dgreg.m_grouped_gemm_contiguous(
            _operand((m0, 64), BF16, g), _operand((2, n0, 64), BF16, g), d,
            grouped_layout=torch.zeros(m0, dtype=torch.int32))
    elif op == "m_masked":
        d = torch.empty(2, m0, n0, dtype=BF16)
        out = dgreg.m_grouped_gemm_masked(
            _operand((2, m0, 64), BF16, g), _operand((2, n0, 64), BF16, g), d,
            masked_m=torch.zeros(2, dtype=torch.int32))
    else:
        d = torch.empty(2, m0, n0)
        out = dgreg.k_grouped_gemm_contiguous(
            _operand((64, m0), BF16, g), _operand((64, n0), BF16, g), d, ks=[16, 48])
    assert out is d
