"""Host time of one kernel launch through the driver, by how the launch is made: which entry
point (``cuLaunchKernelEx`` or ``cuLaunchKernel``, both through ctypes) and how large the
kernel's parameter block is (the sm90 GEMM passes five 128-byte ``__grid_constant__`` tensor
maps and 19 scalars). The kernels do nothing; a sleep kernel keeps the GPU busy so that only
the host is timed.

    python benchmarks/launch_cost.py
"""

from __future__ import annotations

import ctypes
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch
from host_overhead_fp8 import per_call_us

from dgreg.jit.launch import LoadedKernel, _driver_launch

SOURCE = r"""
#include <cuda.h>
#include <stdint.h>
struct alignas(64) Map { uint8_t bytes[128]; };
extern "C" __global__ void __launch_bounds__(384, 1) maps5(
    const __grid_constant__ Map m0, const __grid_constant__ Map m1,
    const __grid_constant__ Map m2, const __grid_constant__ Map m3, const __grid_constant__ Map m4,
    long long s0, long long s1, long long s2, long long s3, long long s4, long long s5,
    long long s6, long long s7, long long s8, long long s9, long long s10, long long s11,
    long long s12, long long s13, long long s14, long long s15, long long s16, long long s17,
    long long s18) {
    if (s0 == 12345) asm volatile("trap;");
}
extern "C" __global__ void scalars19(long long s0, long long s1, long long s2, long long s3,
    long long s4, long long s5, long long s6, long long s7, long long s8, long long s9,
    long long s10, long long s11, long long s12, long long s13, long long s14, long long s15,
    long long s16, long long s17, long long s18) {
    if (s0 == 12345) asm volatile("trap;");
}
extern "C" __global__ void one(long long s0) {
    if (s0 == 12345) asm volatile("trap;");
}
"""


def sm90_cubin(source: str) -> bytes:
    """``source`` compiled by nvcc into an sm_90a cubin."""
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "k.cu"
        src.write_text(source)
        subprocess.run(["nvcc", "-arch=sm_90a", "-cubin", "-o", f"{tmp}/k.cubin", str(src)],
                       check=True)
        return Path(f"{tmp}/k.cubin").read_bytes()


class _MapStandIn:
    """A 128-byte tensor map's stand-in, passed by address like cuda-bindings' ``CUtensorMap``."""

    def __init__(self) -> None:
        self.buffer = ctypes.create_string_buffer(128)

    def getPtr(self) -> int:  # the name cuda-bindings gives it
        return ctypes.addressof(self.buffer)


def map_args(count: int) -> list[Any]:
    """``count`` tensor-map stand-ins, each with its own buffer."""
    return [_MapStandIn() for _ in range(count)]


def main() -> int:
    cubin = sm90_cubin(SOURCE)
    ex = _driver_launch()  # the driver's cuLaunchKernelEx, as dgreg calls it
    libcuda = ctypes.CDLL("libcuda.so.1")
    plain = libcuda.cuLaunchKernel
    plain.argtypes = [ctypes.c_void_p] + [ctypes.c_uint] * 7 + [ctypes.c_void_p] * 3
    plain.restype = ctypes.c_int
    stream = torch.cuda.current_stream().cuda_stream
    maps = map_args(5)
    print(f"device {torch.cuda.get_device_name()}")
    for name, n_maps, n_scalars in (("maps5", 5, 19), ("scalars19", 0, 19), ("one", 0, 1)):
        kernel = LoadedKernel(cubin, name)
        types = [None] * n_maps + [ctypes.c_longlong] * n_scalars
        args = maps[:n_maps] + [1] * n_scalars
        launch_ex = kernel.bind((132, 1, 1), (384, 1, 1), types)
        # the bare launches: dgreg's argument array (scalar slots in its value buffer), with
        # the maps' addresses written in
        state = kernel._new_state((132, 1, 1), (384, 1, 1), (1, 1, 1), 0, types)
        state.config.hStream = stream
        for i, b in enumerate(maps[:n_maps]):
            state.array[i] = b.getPtr()
        handle, array_ref = kernel._handle, state.array_ref

        def launch_plain(_i, handle=handle, array_ref=array_ref):
            err = plain(handle, 132, 1, 1, 384, 1, 1, 0, stream, array_ref, None)
            if err:
                raise RuntimeError(f"cuLaunchKernel: {err}")

        def launch_bare_ex(_i, state=state, handle=handle, array_ref=array_ref, ex=ex):
            err = ex(state.config_ref, handle, array_ref, None)
            if err:
                raise RuntimeError(f"cuLaunchKernelEx: {err}")

        bound_us = per_call_us(lambda _i, launch_ex=launch_ex, args=args: launch_ex(args))
        ex_us = per_call_us(launch_bare_ex)
        plain_us = per_call_us(launch_plain)
        print(f"  {name:10s} ({n_maps} maps, {n_scalars} scalars, "
              f"{n_maps * 128 + n_scalars * 8} bytes): dgreg's bound launch {bound_us:5.2f} us, "
              f"bare cuLaunchKernelEx {ex_us:5.2f} us, bare cuLaunchKernel {plain_us:5.2f} us")
    return 0


if __name__ == "__main__":
    sys.exit(main())
