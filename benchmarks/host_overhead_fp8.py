"""Host time per dgreg.gemm call of the sm90 FP8 kernel on a tiny problem, with the same
tensors every call and with tensors that change every call (fresh TMA descriptors).

    DGREG_PLUGINS=sm90 python benchmarks/host_overhead_fp8.py
"""

from __future__ import annotations

import statistics
import sys
import time

import torch

import dgreg


def per_call_us(fn, calls: int = 2000, repeats: int = 5) -> float:
    fn(0)
    torch.cuda.synchronize()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for i in range(calls):
            fn(i)
        samples.append((time.perf_counter() - start) / calls * 1e6)
        torch.cuda.synchronize()
    return statistics.median(samples)


def main() -> int:
    m, n, k = 64, 256, 512
    sets = []
    for _ in range(16):
        a8, a_sf = dgreg.per_token_cast_to_fp8(torch.randn(m, k, device="cuda"))
        b8, b_sf = dgreg.per_block_cast_to_fp8(torch.randn(n, k, device="cuda"))
        a_sf = dgreg.get_mn_major_tma_aligned_tensor(a_sf)
        d = torch.empty(m, n, device="cuda", dtype=torch.bfloat16)
        sets.append((a8, b8, d, a_sf, b_sf))

    def same(i):
        a8, b8, d, a_sf, b_sf = sets[0]
        dgreg.gemm(a8, b8, d, a_scale=a_sf, b_scale=b_sf)

    def rotating(i):
        a8, b8, d, a_sf, b_sf = sets[i % len(sets)]
        dgreg.gemm(a8, b8, d, a_scale=a_sf, b_scale=b_sf)

    from dgreg.jit import tma

    def fresh(i):  # as if every call brought tensors at new addresses
        tma._CACHE.clear()
        same(i)

    same_us, rotating_us, fresh_us = per_call_us(same), per_call_us(rotating), per_call_us(fresh)
    print(f"device {torch.cuda.get_device_name()}: m{m}n{n}k{k} FP8")
    print(f"  same tensors every call:     {same_us:6.2f} us of host time per call")
    print(f"  16 tensor sets in rotation:  {rotating_us:6.2f} us (TMA maps cached per address)")
    print(f"  new addresses every call:    {fresh_us:6.2f} us (4 TMA maps encoded per call)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
