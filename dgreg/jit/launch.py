"""Loading cubins and launching kernels with NVIDIA's ``cuda-bindings`` (driver API).

Why cuda-bindings rather than hand-written ctypes: it is NVIDIA's maintained binding, typed
and checked, and its launch costs a few microseconds, inside the hot-path budget (measured
by ``benchmarks/jit_overhead.py``). cuda.core's launcher would add a layer without helping:
it cannot raise the dynamic shared-memory limit, which every GEMM kernel here needs.

Kernels launch on torch's current stream, in torch's primary context.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Sequence
from typing import Any

from dgreg.errors import DgregError, UnsupportedDeviceError

__all__ = ["LoadedKernel", "check", "driver"]

_lock = threading.Lock()


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
        self._cu = cu
        self._ok = cu.CUresult.CUDA_SUCCESS
        self.device = torch.cuda.current_device()

    def ensure_shared_mem(self, nbytes: int) -> None:
        if nbytes > self.shared_mem:
            cu = driver()
            attr = cu.CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES
            check(cu.cuFuncSetAttribute(self.function, attr, nbytes),
                  f"raising {self.entry}'s dynamic shared memory to {nbytes} bytes")
            self.shared_mem = nbytes

    def _new_state(self, grid: Sequence[int], block: Sequence[int], cluster: Sequence[int],
                   shared_mem: int, arg_types: Sequence[Any]) -> tuple[Any, list[Any], Any, int]:
        """A launch config and a ``void*[]`` argument buffer (with its address) for one thread.

        Passing cuda-bindings a pointer to a ready array costs far less per launch than
        letting it convert a tuple of Python values (about 10 us down to a few, on an H200).
        """
        cu = self._cu
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
        slots = [t() if t is not None else None for t in arg_types]
        array = (ctypes.c_void_p * max(len(slots), 1))()
        for i, slot in enumerate(slots):
            if slot is not None:
                array[i] = ctypes.addressof(slot)
        return config, slots, array, ctypes.addressof(array)

    def bind(self, grid: Sequence[int], block: Sequence[int], arg_types: Sequence[Any], *,
             cluster: Sequence[int] = (1, 1, 1), shared_mem: int = 0) -> Any:
        """A ``launch(args)`` function for one launch shape, on torch's current stream.

        ``arg_types`` are ctypes types, or None for a driver object passed by address (a
        cuda-bindings ``CUtensorMap``, kept alive by the caller until the launch returns).
        """
        grid, block, cluster = tuple(grid), tuple(block), tuple(cluster)
        arg_types = tuple(arg_types)
        self.ensure_shared_mem(shared_mem)
        local = threading.local()  # each thread fills its own config and argument buffer
        new_state, launch_ex, ok = self._new_state, self._cu.cuLaunchKernelEx, self._ok
        function, stream_of, device = self.function, raw_stream_getter(), self.device

        def launch(args: Sequence[Any]) -> None:
            state = getattr(local, "state", None)
            if state is None:
                state = local.state = new_state(grid, block, cluster, shared_mem, arg_types)
            config, slots, array, address = state
            config.hStream = stream_of(device)
            for i, (slot, value) in enumerate(zip(slots, args, strict=True)):
                if slot is None:
                    array[i] = value.getPtr()  # the driver object's own storage
                else:
                    slot.value = value
            err, = launch_ex(config, function, address, 0)
            if err != ok:
                check((err,), f"launching {self.entry} grid={grid} block={block} "
                              f"cluster={cluster} smem={shared_mem}")

        return launch

    def launch(self, grid: Sequence[int], block: Sequence[int], args: Sequence[Any],
               arg_types: Sequence[Any], *, cluster: Sequence[int] = (1, 1, 1),
               shared_mem: int = 0) -> None:
        """Launch once (convenient; repeated launches should ``bind`` once and reuse it)."""
        self.bind(grid, block, arg_types, cluster=cluster, shared_mem=shared_mem)(args)


def raw_stream_getter() -> Any:
    """``f(device) -> cudaStream_t`` of torch's current stream, chosen once per bound launch.

    torch's private getter returns a plain int without building a torch.cuda.Stream object
    (about 1 us per call saved on the hot path); the public API is the fallback.
    """
    import torch

    getter = getattr(torch._C, "_cuda_getCurrentRawStream", None)
    if getter is not None:
        return getter
    return lambda device: torch.cuda.current_stream(device).cuda_stream
