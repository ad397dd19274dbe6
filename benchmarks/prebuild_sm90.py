"""Compile, on a machine without a GPU, every sm90 kernel a GPU run of the conformance suite
and of ``dgreg bench`` (fp8, bf16, grouped, layouts) will pick, into a kernel cache to carry
to the GPU machine (same nvcc there: the entries are hits).

    DGREG_ARCH=h200 python benchmarks/prebuild_sm90.py .jitcache

The device is simulated (``DGREG_ARCH``, 132 SMs for h100/h200): the heuristics pick exactly
what they pick on the real one.
"""

from __future__ import annotations

import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import dgreg
from dgreg import bench, config
from dgreg.device import current_device
from dgreg.jit import KernelCache, build
from dgreg.registry import get_registry

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))


def _bench_resolutions(device):
    for m, n, k in bench.DENSE_SHAPES:
        for op in ("fp8_gemm", "bf16_gemm"):
            yield dgreg.explain(op, (m, n, k), device=device, file=None)
    for (kind, groups, per, n, k), _ in bench.GROUPED_SHAPES:
        if kind == "masked":
            problem = dgreg.Problem(per, n, k, groups, expected_m=per)
        else:
            problem = dgreg.Problem(groups * per, n, k, groups)
        yield dgreg.explain(f"m_grouped_fp8_gemm_{kind}", problem, device=device, file=None)
    for dtype, layout, m, n, k in bench.LAYOUT_SHAPES:
        yield dgreg.explain(f"{dtype}_gemm", dgreg.Problem(m, n, k), device=device, file=None,
                            layout=layout)


def main(argv: list[str]) -> int:
    from plugin_helpers import conformance_resolutions

    cache = KernelCache(Path(argv[0] if argv else ".jitcache"))
    start = time.time()
    with config.scope(DGREG_PLUGINS=("sm90",)):
        device = current_device()
        registry = get_registry()
        plans = {}
        for res, _ in conformance_resolutions("sm90", device.name.split()[-1].lower()):
            plans.setdefault(res.kernel_key, res)
        for res in _bench_resolutions(device):
            if res.chosen is not None and res.chosen.plugin == "sm90":
                plans.setdefault(res.kernel_key, res)

        def one(res):
            build(registry, res.chosen, res.spec, res.choice.config, res.device, cache)

        with ThreadPoolExecutor(2) as pool:
            list(pool.map(one, plans.values()))
    print(f"{len(plans)} kernels in {cache.root} "
          f"({time.time() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
