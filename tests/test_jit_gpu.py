"""The JIT on a Hopper GPU: a TMA kernel, the hook pipeline end to end, CUDA graphs,
torch.compile and the torch.library ops."""

from __future__ import annotations

import ctypes

import pytest
import torch
from tma_kernels import tma_scale_source
from toy_jit_plugin import ToyJitPlugin

import dgreg
from dgreg import CaptureError
from dgreg.jit import KernelCache, build_source
from dgreg.jit.launch import LoadedKernel
from dgreg.jit.tma import tensor_map_for

pytestmark = pytest.mark.gpu


def _arch() -> str:
    major, minor = torch.cuda.get_device_capability()
    return f"sm_{major}{minor}a"


@pytest.fixture
def toy(make_registry, tmp_path, monkeypatch):
    monkeypatch.setenv("DGREG_CACHE_DIR", str(tmp_path / "cache"))
    from dgreg import config

    with config.scope(DGREG_CACHE_DIR=str(tmp_path / "cache")):
        plugin = ToyJitPlugin(arch=_arch().replace("_", ""))
        make_registry(("toy", plugin))
        yield plugin


@pytest.mark.parametrize("swizzle", [0, 128])
@pytest.mark.parametrize(("shape", "box"), [((100, 200), (32, 64)), ((3, 40, 136), (2, 16, 64))])
def test_tma_kernel_round_trips(shape, box, swizzle, tmp_path):
    rank = len(shape)
    built = build_source(tma_scale_source(_arch(), rank, box), cache=KernelCache(tmp_path))
    tile_bytes = 2
    for b in box:
        tile_bytes *= b
    kernel = LoadedKernel(built.cubin, "tma_scale", tile_bytes + 1024)
    src = torch.randn(shape, device="cuda", dtype=torch.bfloat16)
    dst = torch.full_like(src, float("nan"))
    grid = [-(-shape[-1] // box[-1]), -(-shape[-2] // box[-2]), 1 if rank == 2 else -(-shape[0] // box[0])]
    kernel.launch(grid, (128, 1, 1), (tensor_map_for(src, box, swizzle),
                                      tensor_map_for(dst, box, swizzle), 2.0),
                  (None, None, ctypes.c_float), shared_mem=tile_bytes + 1024)
    torch.cuda.synchronize()
    torch.testing.assert_close(dst, (src.float() * 2).to(torch.bfloat16), rtol=0, atol=0)


def test_toy_plugin_runs_through_dgreg_gemm(toy):
    for m, n, k in ((1, 8, 16), (129, 72, 256), (64, 4096, 128)):
        a = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
        b = torch.randn(n, k, device="cuda", dtype=torch.bfloat16)
        d = torch.full((m, n), float("nan"), device="cuda", dtype=torch.bfloat16)
        res = dgreg.explain("bf16_gemm", (m, n, k), file=None)
        assert res.chosen.kernel_id == "toy.bf16_gemm_naive"
        dgreg.gemm(a, b, d)
        ref = a.double() @ b.double().T
        assert dgreg.calc_diff(d, ref) < 1e-5 and not d.isnan().any()
    assert toy.source_calls == 1  # one kernel, one config, three planned shapes


def test_hot_path_calls_no_hook(toy):
    a = torch.randn(64, 64, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(32, 64, device="cuda", dtype=torch.bfloat16)
    d = torch.empty(64, 32, device="cuda", dtype=torch.bfloat16)
    dgreg.gemm(a, b, d)
    calls = toy.launch_arg_calls
    for _ in range(10):
        dgreg.gemm(a, b, d)
    assert toy.launch_arg_calls == calls


@pytest.mark.parametrize("reusable", [True, False])
def test_repeats_pack_once_per_address_and_stream(toy, reusable):
    """With arguments marked reusable, repeats at data pointers seen before on the same stream
    launch the kept arguments (no pack); rotating tensor sets and a side stream stay correct.
    Unmarked, every call packs."""
    toy.reusable = reusable
    sets = [(torch.randn(72, 64, device="cuda", dtype=torch.bfloat16),
             torch.randn(40, 64, device="cuda", dtype=torch.bfloat16),
             torch.empty(72, 40, device="cuda", dtype=torch.bfloat16)) for _ in range(3)]
    side = torch.cuda.Stream()
    calls = 0
    for _ in range(3):
        for stream in (torch.cuda.current_stream(), side):
            with torch.cuda.stream(stream):
                for a, b, d in sets:
                    d.fill_(float("nan"))
                    dgreg.gemm(a, b, d)
                    calls += 1
                    stream.synchronize()
                    assert dgreg.calc_diff(d, a.double() @ b.double().T) < 1e-5
                    assert not d.isnan().any()
    # the first call runs through the planner's runner, then one pack per (set, stream)
    assert toy.packed == (1 + 3 * 2 if reusable else calls)


def test_graph_capture_and_replay(toy):
    a = torch.randn(96, 128, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(80, 128, device="cuda", dtype=torch.bfloat16)
    d = torch.empty(96, 80, device="cuda", dtype=torch.bfloat16)
    dgreg.gemm(a, b, d)  # warm up: compile, load, plan
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        dgreg.gemm(a, b, d)
    for _ in range(3):
        a.copy_(torch.randn_like(a))
        d.fill_(float("nan"))
        graph.replay()
        torch.cuda.synchronize()
        assert dgreg.calc_diff(d, a.double() @ b.double().T) < 1e-5


def test_cold_call_inside_capture_is_a_capture_error(toy):
    a = torch.randn(48, 64, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(40, 64, device="cuda", dtype=torch.bfloat16)
    d = torch.empty(48, 40, device="cuda", dtype=torch.bfloat16)
    graph = torch.cuda.CUDAGraph()
    with pytest.raises(CaptureError, match="warm up"), torch.cuda.graph(graph):
        dgreg.gemm(a, b, d)


def test_torch_compile_and_opcheck(toy):
    import dgreg.ops

    a = torch.randn(64, 128, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(48, 128, device="cuda", dtype=torch.bfloat16)

    @torch.compile(fullgraph=True)
    def f(a, b):
        d = torch.empty(a.shape[0], b.shape[0], device=a.device, dtype=torch.bfloat16)
        dgreg.gemm(a, b, d)
        return d * 2

    out = f(a, b)
    assert dgreg.calc_diff(out, 2 * (a.double() @ b.double().T)) < 1e-5
    d = torch.empty(64, 48, device="cuda", dtype=torch.bfloat16)
    torch.library.opcheck(torch.ops.dgreg.gemm_.default,
                          (a, b, d, None, False, None, None, None, "NT"))


def test_nvrtc_backend_compiles_and_runs(tmp_path):
    pytest.importorskip("cuda.bindings.nvrtc")
    from toy_jit_plugin import _ARG_TYPES, toy_source

    from dgreg import config
    from dgreg.jit.compiler import compiler_id

    with config.scope(DGREG_JIT_BACKEND="nvrtc"):
        assert compiler_id().startswith("nvrtc ")
        built = build_source(toy_source(_arch()), cache=KernelCache(tmp_path))
    assert built.entry.meta["compiler"].startswith("nvrtc")
    kernel = LoadedKernel(built.cubin, "toy_bf16_gemm_nt")
    a = torch.randn(20, 32, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(24, 32, device="cuda", dtype=torch.bfloat16)
    d = torch.full((20, 24), float("nan"), device="cuda", dtype=torch.bfloat16)
    kernel.launch((2, 2, 1), (16, 16, 1),
                  (a.data_ptr(), b.data_ptr(), d.data_ptr(), 20, 24, 32, 32, 32, 24), _ARG_TYPES)
    torch.cuda.synchronize()
    assert dgreg.calc_diff(d, a.double() @ b.double().T) < 1e-5
