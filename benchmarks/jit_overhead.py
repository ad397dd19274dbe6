"""Host cost of dgreg's JIT path on a GPU: cold compile, warm load, per-call overhead.

Per-call overhead = host time per ``dgreg.gemm`` call minus host time per bare launch of the
same cubin with pre-packed arguments (both measured as many asynchronous calls in a row on a
tiny problem, so the GPU never becomes the bottleneck), next to the kernel's own duration.

    python benchmarks/jit_overhead.py [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from toy_jit_plugin import _ARG_TYPES, SOURCE, ToyJitPlugin, _pack

import dgreg
from dgreg import config, dispatch
from dgreg.jit import KernelCache, build_source
from dgreg.jit.launch import LoadedKernel
from dgreg.registry import Registry, set_registry


def per_call_us(fn, calls: int = 2000, repeats: int = 7) -> float:
    fn()
    torch.cuda.synchronize()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        samples.append((time.perf_counter() - start) / calls * 1e6)
        torch.cuda.synchronize()
    return statistics.median(samples)


def kernel_us(fn, calls: int = 200) -> float:
    from torch.profiler import ProfilerActivity, profile

    fn()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(calls):
            fn()
        torch.cuda.synchronize()
    times = [e.device_time for e in prof.events() if "toy_bf16_gemm" in e.name]
    return statistics.median(times) if times else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    major, minor = torch.cuda.get_device_capability()
    arch = f"sm_{major}{minor}a"
    results: dict[str, float | str] = {"device": torch.cuda.get_device_name(),
                                       "torch": torch.__version__}

    root = Path(tempfile.mkdtemp(prefix="dgreg-bench-cache-"))
    source = dgreg.KernelSource(f"#define TILE 16\n{SOURCE}", "toy_bf16_gemm_nt", arch)
    start = time.perf_counter()
    built = build_source(source, cache=KernelCache(root))
    results["cold_compile_s"] = time.perf_counter() - start
    assert built.built
    loads = []
    for _ in range(5):
        start = time.perf_counter()
        hit = build_source(source, cache=KernelCache(root))
        LoadedKernel(hit.cubin, hit.source.entry)
        loads.append((time.perf_counter() - start) * 1e3)
        assert not hit.built
    results["warm_load_ms"] = statistics.median(loads)

    with config.scope(DGREG_CACHE_DIR=str(root)):
        registry = Registry(autoload=False)
        registry.add(ToyJitPlugin(arch=arch.replace("_", "")), "toy")
        set_registry(registry)
        a = torch.randn(16, 64, device="cuda", dtype=torch.bfloat16)
        b = torch.randn(16, 64, device="cuda", dtype=torch.bfloat16)
        d = torch.empty(16, 16, device="cuda", dtype=torch.bfloat16)
        dgreg.gemm(a, b, d)
        torch.testing.assert_close(d.float(), a.float() @ b.float().T, rtol=2e-2, atol=2e-2)
        results["dgreg_call_us"] = per_call_us(lambda: dgreg.gemm(a, b, d))
        kernel = next(iter(dispatch._kernels.values()))
        from dgreg.call import dense_call

        call = dense_call(a, b, d)
        packed = _pack(call)
        bound = kernel.bind((1, 1, 1), (16, 16, 1), _ARG_TYPES)
        results["bare_launch_us"] = per_call_us(lambda: bound(packed))
        results["kernel_us"] = kernel_us(lambda: dgreg.gemm(a, b, d))
    results["overhead_us"] = results["dgreg_call_us"] - results["bare_launch_us"]
    for key, value in results.items():
        print(f"{key:>16}: {value:.3f}" if isinstance(value, float) else f"{key:>16}: {value}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
