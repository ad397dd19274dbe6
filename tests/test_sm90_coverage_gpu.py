"""The sm90 plugin's variants beyond the NT BF16-output kernels on a Hopper GPU: the 1d1d and
UE8M0 recipes, FP32 output, the accumulator C (also in place), the NN/TN/TT layouts, M-grouped
variants and the K-grouped weight-gradient GEMMs; each against the float64 reference."""

from __future__ import annotations

import pytest
import torch

import dgreg
from dgreg import call as calls
from dgreg import dispatch, reference

pytestmark = [pytest.mark.gpu, pytest.mark.usefixtures("sm90_gpu")]


def _force(monkeypatch, text: str) -> None:
    """Force the sm90 config ``text`` (``DGREG_SM90_CONFIG``) for the calls that follow."""
    monkeypatch.setenv("DGREG_SM90_CONFIG", text)
    dispatch.clear_caches()


def _resolved_config(call: calls.GemmCall):
    """The sm90 config ``call`` resolves to (it must resolve to sm90)."""
    res = dgreg.resolve(call.spec, problem=call.problem)
    assert res.chosen.plugin == "sm90", str(res)
    return res.choice.config


def _quantise(x: torch.Tensor, recipe: str, blocks: bool):
    """x [.., rows, K] BF16 -> (FP8, scales) of the recipe: per 128x128 block for 1d2d B."""
    cast = dgreg.per_block_cast_to_fp8 if blocks and recipe == "1d2d" else dgreg.per_token_cast_to_fp8
    pairs = [cast(row, use_ue8m0=recipe == "ue8m0") for row in x.reshape(-1, *x.shape[-2:])]
    q = torch.stack([p[0] for p in pairs]).reshape(x.shape)
    sf = torch.stack([p[1] for p in pairs])
    if recipe == "ue8m0":
        sf = dgreg.pack_ue8m0_to_int(sf)
    return q, sf.reshape(*x.shape[:-2], *sf.shape[-2:])


def _check(call: calls.GemmCall, run, tolerance: float) -> None:
    """Run the kernel on a NaN-poisoned D (C copied first if it is D) and compare."""
    want, written = reference.compute(call, torch.float64)
    if call.c is None or call.c is not call.d:
        call.d.fill_(float("nan"))
    run()
    torch.cuda.synchronize()
    got = call.d.double()
    if written is not None:
        written = written.expand_as(got)
        assert got[~written].isnan().all(), "rows the op does not write must stay untouched"
        got, want = got[written], want[written]
    assert not got.isnan().any(), "unwritten output elements"
    if not got.numel():  # nothing written (every row masked out): checked above
        return
    diff = dgreg.calc_diff(got, want)
    assert diff < tolerance, f"calc_diff {diff:.2e}"
    scale = want.abs().max().item()
    assert (got - want).abs().max().item() <= 2 ** -6 * scale + 1e-3


def _operands(m, n, k, dtype, recipe, gen, a_groups=(), b_groups=()):
    """A [*a_groups, m, k] and B [*b_groups, n, k], quantised by the recipe for FP8."""
    a = torch.randn(*a_groups, m, k, device="cuda", dtype=torch.bfloat16, generator=gen)
    b = torch.randn(*b_groups, n, k, device="cuda", dtype=torch.bfloat16, generator=gen)
    if dtype == "bf16":
        return a, None, b, None
    a8, a_sf = _quantise(a, recipe, False)
    b8, b_sf = _quantise(b, recipe, True)
    return a8, a_sf, b8, b_sf


def _padded(x: torch.Tensor) -> torch.Tensor:
    """``x`` [R, C] in storage whose rows are padded to 16 bytes (TMA's stride rule)."""
    per16 = 16 // x.element_size()
    rows, cols = x.shape
    storage = torch.empty(rows, -(-cols // per16) * per16, dtype=x.dtype, device=x.device)
    storage[:, :cols] = x
    return storage[:, :cols]


def _expert_ids(sizes: list[int]) -> torch.Tensor:
    """Per-row expert ids of the contiguous layout, each expert padded to 128 rows (-1)."""
    ids = []
    for g, size in enumerate(sizes):
        ids += [g] * size + [-1] * (-(-size // 128) * 128 - size)
    return torch.tensor(ids, dtype=torch.int32, device="cuda")


def _orient(x, sf, k_major: bool):
    """The operand (and its scales) as passed for a layout letter: K-major, or transposed."""
    if k_major:
        return x, sf
    return _padded(x.t()), None if sf is None else sf.t()


@pytest.mark.parametrize("layout", ["NT", "NN", "TN", "TT"])
@pytest.mark.parametrize(("dtype", "recipe"), [("fp8", "1d2d"), ("fp8", "1d1d"), ("fp8", "ue8m0"),
                                               ("bf16", None)])
@pytest.mark.parametrize(("out", "acc"), [(torch.bfloat16, None), (torch.float32, None),
                                          (torch.float32, "c"), (torch.float32, "inplace"),
                                          (torch.bfloat16, "inplace"),
                                          (torch.bfloat16, "c")])
@pytest.mark.parametrize(("m", "n", "k"), [(129, 520, 1920), (64, 2112, 768)])
def test_dense_variants(layout, dtype, recipe, out, acc, m, n, k):
    gen = torch.Generator(device="cuda").manual_seed(m + n + k + len(layout))
    a, a_sf, b, b_sf = _operands(m, n, k, dtype, recipe, gen)
    a, a_sf = _orient(a, a_sf, layout[0] == "N")
    b, b_sf = _orient(b, b_sf, layout[1] == "T")
    d = torch.empty(m, n, device="cuda", dtype=out)
    c = None
    if acc == "inplace":
        c = d.copy_(torch.randn(m, n, device="cuda", generator=gen))
    elif acc == "c":
        c = torch.randn(m, n, device="cuda", generator=gen)  # FP32 C, also for a BF16 D
    kwargs = dict(c=c, a_scale=a_sf, b_scale=b_sf, layout=layout, recipe=recipe)
    call = calls.dense_call(a, b, d, **kwargs)
    res = dgreg.resolve(call.spec, problem=call.problem)
    assert res.chosen.plugin == "sm90", str(res)
    assert res.choice.config.out_f32 == (out == torch.float32)
    assert res.choice.config.with_c == (acc is not None)
    tol = 1e-3 if dtype == "fp8" else 1e-5
    _check(call, lambda: dgreg.gemm(a, b, d, **kwargs), tol)


@pytest.mark.parametrize(("dtype", "recipe"), [("fp8", "1d1d"), ("fp8", "ue8m0"), ("bf16", None)])
@pytest.mark.parametrize("acc", [None, "c", "inplace"])
@pytest.mark.parametrize(("ks", "m", "n"), [((512, 0, 1024, 128), 256, 384),
                                            ((1024,), 77, 100), ((100, 0, 77, 64), 130, 200)])
def test_k_grouped(dtype, recipe, acc, ks, m, n):
    if dtype == "fp8" and any(k % (512 if recipe == "ue8m0" else 128) for k in ks):
        pytest.skip("FP8 groups are whole scale blocks")
    gen = torch.Generator(device="cuda").manual_seed(sum(ks) + m + n)
    total = sum(ks)
    if total == 0:
        pytest.skip("sum K = 0 never reaches a kernel (D = C or 0 on the host side)")
    a = torch.randn(total, m, device="cuda", dtype=torch.bfloat16, generator=gen)
    b = torch.randn(total, n, device="cuda", dtype=torch.bfloat16, generator=gen)
    kwargs = {}
    if dtype == "fp8":  # per row (of A^T and B^T) and 128 K: quantise the K-major views
        a8, a_sf = _quantise(a.t().contiguous(), recipe, False)
        b8, b_sf = _quantise(b.t().contiguous(), recipe, False)
        a, b = a8.t(), b8.t()
        kwargs = {"a_scale": a_sf.t(), "b_scale": b_sf.t(), "recipe": recipe}
    a, b = _padded(a.contiguous()), _padded(b.contiguous())  # [sum K, MN], MN-major
    d = torch.empty(len(ks), m, n, device="cuda", dtype=torch.float32)
    c = None
    if acc == "inplace":
        c = d.copy_(torch.randn(d.shape, device="cuda", generator=gen))
    elif acc == "c":
        c = torch.randn(d.shape, device="cuda", generator=gen)
    call = calls.k_grouped_call(a, b, d, ks=list(ks), c=c, **kwargs)
    res = dgreg.resolve(call.spec, problem=call.problem)
    assert res.chosen.plugin == "sm90", str(res)
    tol = 1e-3 if dtype == "fp8" else 1e-5
    _check(call, lambda: dgreg.k_grouped_gemm_contiguous(a, b, d, ks=list(ks), c=c, **kwargs), tol)


@pytest.mark.parametrize(("dtype", "recipe"), [("fp8", "1d1d"), ("fp8", "ue8m0"), ("bf16", None)])
@pytest.mark.parametrize("out", [torch.bfloat16, torch.float32])
@pytest.mark.parametrize("layout", ["NT", "NN"])
def test_m_grouped_contiguous_variants(dtype, recipe, out, layout):
    sizes, n, k = [300, 0, 77, 128], 528, 1920  # NN: B rows of N FP8 bytes, 16-byte aligned
    gen = torch.Generator(device="cuda").manual_seed(len(layout) + n)
    ids = _expert_ids(sizes)
    m, groups = ids.numel(), len(sizes)
    a, a_sf, b, b_sf = _operands(m, n, k, dtype, recipe, gen, b_groups=(groups,))
    if layout == "NN":
        b = b.transpose(1, 2).contiguous()
        b_sf = None if b_sf is None else b_sf.transpose(1, 2)
    d = torch.empty(m, n, device="cuda", dtype=out)
    kwargs = dict(grouped_layout=ids, a_scale=a_sf, b_scale=b_sf, layout=layout, recipe=recipe)
    call = calls.m_contiguous_call(a, b, d, **kwargs)
    assert dgreg.resolve(call.spec, problem=call.problem).chosen.plugin == "sm90"
    tol = 1e-3 if dtype == "fp8" else 1e-5
    _check(call, lambda: dgreg.m_grouped_gemm_contiguous(a, b, d, **kwargs), tol)


@pytest.mark.parametrize(("dtype", "recipe"), [("fp8", "1d1d"), ("fp8", "ue8m0"), ("bf16", None)])
@pytest.mark.parametrize("out", [torch.bfloat16, torch.float32])
def test_m_grouped_masked_variants(dtype, recipe, out):
    groups, m_max, n, k = 3, 200, 384, 1024
    gen = torch.Generator(device="cuda").manual_seed(m_max + n)
    a, a_sf, b, b_sf = _operands(m_max, n, k, dtype, recipe, gen, (groups,), (groups,))
    masked = torch.tensor([200, 0, 65], dtype=torch.int32, device="cuda")
    d = torch.empty(groups, m_max, n, device="cuda", dtype=out)
    kwargs = dict(masked_m=masked, expected_m=100, a_scale=a_sf, b_scale=b_sf, recipe=recipe)
    call = calls.m_masked_call(a, b, d, **kwargs)
    assert dgreg.resolve(call.spec, problem=call.problem).chosen.plugin == "sm90"
    tol = 1e-3 if dtype == "fp8" else 1e-5
    _check(call, lambda: dgreg.m_grouped_gemm_masked(a, b, d, **kwargs), tol)


@pytest.mark.parametrize("dtype", ["fp8", "bf16"])
def test_m_grouped_256_row_tiles_across_two_experts(dtype, monkeypatch):
    """A 256-row tile whose two 128-row blocks belong to two experts runs once per expert and
    writes each expert's rows only; padding rows stay untouched."""
    _force(monkeypatch, "block_m=256,block_n=128")
    call, run = contiguous_case(dtype, n=384, seed=7)
    assert dgreg.resolve(call.spec, problem=call.problem).choice.config.block_m == 256
    _check(call, run, 1e-3 if dtype == "fp8" else 1e-5)


def contiguous_case(dtype: str, n: int, seed: int, k: int = 1024):
    """An M-grouped contiguous FP8 1d2d (or BF16) call over experts of 300, 0, 77, 128, 256
    and 130 rows (padding rows between them; 256-row tiles that hold two experts), and the
    function that runs it: ``(call, run)``."""
    sizes = [300, 0, 77, 128, 256, 130]
    gen = torch.Generator(device="cuda").manual_seed(seed)
    ids = _expert_ids(sizes)
    m, groups = ids.numel(), len(sizes)
    a, a_sf, b, b_sf = _operands(m, n, k, dtype, "1d2d", gen, b_groups=(groups,))
    d = torch.empty(m, n, device="cuda", dtype=torch.bfloat16)
    kwargs = dict(grouped_layout=ids, a_scale=a_sf, b_scale=b_sf)
    call = calls.m_contiguous_call(a, b, d, **kwargs)
    return call, lambda: dgreg.m_grouped_gemm_contiguous(a, b, d, **kwargs)


@pytest.mark.parametrize("dtype", [torch.float8_e4m3fn, torch.bfloat16])
@pytest.mark.parametrize("shape", [(129, 1920), (64, 64), (1000, 7168), (3, 77, 512)])
def test_transposing_copy_is_exact(dtype, shape):
    from dgreg_sm90.transpose import to_k_major

    *lead, rows, k = shape
    per16 = 16 // torch.empty((), dtype=dtype).element_size()
    padded = -(-rows // per16) * per16
    storage = torch.randn(*lead, k, padded, device="cuda").to(dtype)
    x = storage[..., :rows].transpose(-1, -2)  # [.., rows, K], stride 1 along rows
    got = to_k_major(x)
    assert got.is_contiguous() and got.shape == x.shape
    assert torch.equal(got.view(torch.uint8 if dtype == torch.float8_e4m3fn else torch.int16),
                       x.contiguous().view(torch.uint8 if dtype == torch.float8_e4m3fn else torch.int16))
