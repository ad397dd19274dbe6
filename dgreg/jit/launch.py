"""Loading cubins and launching kernels with NVIDIA's ``cuda-bindings`` (driver API).

Why cuda-bindings rather than hand-written ctypes: it is NVIDIA's maintained binding, typed
and checked, and its launch costs a few microseconds, inside the hot-path budget (measured
by ``benchmarks/jit_overhead.py``). cuda.core's launcher would add a layer without helping:
it cannot raise the dynamic shared-memory limit, which every GEMM kernel here needs.

Kernels launch on torch's current stream, in torch's primary context.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from dgreg.errors import DgregError, UnsupportedDeviceError

__all__ = ["LoadedKernel", "check", "driver"]

_lock = threading.Lock()
_MAX_DYNAMIC_SMEM = None  # resolved lazily: cu.CUfunction_attribute....


def driver() -> Any:
    try:
        from cuda.bindings import driver as cu
    except ImportError as exc:
        raise UnsupportedDeviceError(
            "launching dgreg's compiled kernels needs the cuda-bindings package "
            "(pip install 'dgreg[cuda]' or pip install cuda-bindings)") from exc
    return cu


def check(result: Any, what: str) -> Any:
    """Unpack a cuda-bindings return tuple, raising on an error code."""
    cu = driver()
    err, *rest = result if isinstance(result, tuple) else (result,)
    if err != cu.CUresult.CUDA_SUCCESS:
        _, name = cu.cuGetErrorName(err)
        raise DgregError(f"{what} failed: {name.decode() if isinstance(name, bytes) else name}")
    if not rest:
        return None
    return rest[0] if len(rest) == 1 else tuple(rest)


class LoadedKernel:
    """One kernel function of a loaded cubin, ready to launch repeatedly."""

    def __init__(self, cubin: bytes, entry: str, shared_mem: int = 0) -> None:
        import torch

        cu = driver()
        torch.cuda.init()
        torch.cuda.current_stream()  # makes torch's primary context current on this thread
        with _lock:
            self.module = check(cu.cuModuleLoadData(cubin), "cuModuleLoadData")
        self.function = check(cu.cuModuleGetFunction(self.module, entry.encode()),
                              f"cuModuleGetFunction({entry})")
        self.entry = entry
        self.shared_mem = 0
        self.ensure_shared_mem(shared_mem)
        self._configs: dict[tuple[Any, ...], Any] = {}

    def ensure_shared_mem(self, nbytes: int) -> None:
        if nbytes > self.shared_mem:
            cu = driver()
            attr = cu.CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES
            check(cu.cuFuncSetAttribute(self.function, attr, nbytes),
                  f"raising {self.entry}'s dynamic shared memory to {nbytes} bytes")
            self.shared_mem = nbytes

    def _config(self, grid: Sequence[int], block: Sequence[int], cluster: Sequence[int],
                shared_mem: int) -> Any:
        key = (*grid, *block, *cluster, shared_mem)
        config = self._configs.get(key)
        if config is None:
            cu = driver()
            self.ensure_shared_mem(shared_mem)
            config = cu.CUlaunchConfig()
            config.gridDimX, config.gridDimY, config.gridDimZ = grid
            config.blockDimX, config.blockDimY, config.blockDimZ = block
            config.sharedMemBytes = shared_mem
            attrs = []
            if tuple(cluster) != (1, 1, 1):
                attr = cu.CUlaunchAttribute()
                attr.id = cu.CUlaunchAttributeID.CU_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION
                attr.value.clusterDim.x, attr.value.clusterDim.y, attr.value.clusterDim.z = cluster
                attrs.append(attr)
            config.attrs = attrs
            config.numAttrs = len(attrs)
            self._configs[key] = config
        return config

    def launch(self, grid: Sequence[int], block: Sequence[int], args: Sequence[Any],
               arg_types: Sequence[Any], *, cluster: Sequence[int] = (1, 1, 1),
               shared_mem: int = 0, stream: int | None = None) -> None:
        """Launch on ``stream`` (a raw ``cudaStream_t``; default: torch's current stream)."""
        cu = driver()
        if stream is None:
            import torch

            stream = torch.cuda.current_stream().cuda_stream
        config = self._config(grid, block, cluster, shared_mem)
        config.hStream = stream
        err, = cu.cuLaunchKernelEx(config, self.function, (tuple(args), tuple(arg_types)), 0)
        if err != cu.CUresult.CUDA_SUCCESS:
            check((err,), f"launching {self.entry} grid={tuple(grid)} block={tuple(block)} "
                          f"cluster={tuple(cluster)} smem={shared_mem}")
