"""Loading cubins with NVIDIA's ``cuda-bindings`` (driver API) and launching their kernels.

Modules, functions and attributes go through cuda-bindings: NVIDIA's maintained binding,
typed and checked. The launch itself, on the hot path, calls the driver's
``cuLaunchKernelEx`` through ctypes with a prebuilt launch config and argument array: on an
H200 that took the launch from 5.1 to 4.0 us of host time, and a whole FP8 call from 11.5 to
10.3 us (``benchmarks/results/2026-11-21-h200-host-overhead-ab-ctypes.txt``), where the budget
is 10. cuda.core's launcher would add a layer without helping: it cannot raise the dynamic
shared-memory limit, which every GEMM kernel here needs.

Two ways to launch a bound kernel: ``bind`` writes each call's arguments into one argument
array per thread; ``bind_prepared`` builds an array once per argument tuple, for callers that
keep arrays for arguments that repeat (the core does, per data pointers, for plugins that mark
their arguments reusable), and then only sets the stream.

Kernels launch on torch's current stream, in torch's primary context.
"""

from __future__ import annotations

import ctypes
import functools
import struct
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
        self._handle = ctypes.c_void_p.from_address(self.function.getPtr()).value
        self.device = torch.cuda.current_device()

    def ensure_shared_mem(self, nbytes: int) -> None:
        if nbytes > self.shared_mem:
            cu = driver()
            attr = cu.CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES
            check(cu.cuFuncSetAttribute(self.function, attr, nbytes),
                  f"raising {self.entry}'s dynamic shared memory to {nbytes} bytes")
            self.shared_mem = nbytes

    def _new_state(self, grid: Sequence[int], block: Sequence[int], cluster: Sequence[int],
                   shared_mem: int, arg_types: Sequence[Any]) -> _LaunchState:
        """A launch config, a value buffer and a ``void*[]`` argument array for one thread.

        Scalar arguments live in 8-byte slots of the buffer that the array points at once and
        for all; a call writes them with one ``struct.pack_into``, and a driver object's
        address into the array only when the call passes another object than the last one.
        """
        config, attrs, _ = _new_config(grid, block, cluster, shared_mem)
        values, array = _new_arguments(arg_types)
        return _LaunchState(config, attrs, values, array, [None] * len(array))

    def bind(self, grid: Sequence[int], block: Sequence[int], arg_types: Sequence[Any], *,
             cluster: Sequence[int] = (1, 1, 1), shared_mem: int = 0) -> Any:
        """A ``launch(args)`` function for one launch shape, on torch's current stream.

        ``arg_types`` are ctypes types (integers and pointers), or None for a driver object
        passed by address (a cuda-bindings ``CUtensorMap``, kept alive by the caller until the
        launch returns). The launch goes straight to the driver's ``cuLaunchKernelEx`` through
        ctypes: cuda-bindings' own wrapper costs about 2 us more per call.
        """
        grid, block, cluster = tuple(grid), tuple(block), tuple(cluster)
        arg_types = tuple(arg_types)
        self.ensure_shared_mem(shared_mem)
        fmt, objects, first, last = _arg_layout(arg_types)
        local = threading.local()  # each thread fills its own config and argument buffers
        new_state, launch_ex = self._new_state, _driver_launch()
        function, stream_of, device = self._handle, raw_stream_getter(), self.device
        pack_into = struct.pack_into

        def launch(args: Sequence[Any]) -> None:
            state = getattr(local, "state", None)
            if state is None:
                state = local.state = new_state(grid, block, cluster, shared_mem, arg_types)
            state.config.hStream = stream_of(device)
            if fmt:
                pack_into(fmt, state.values, 8 * first, *args[first:last])
            array, seen = state.array, state.objects
            for i in objects:
                obj = args[i]
                if obj is not seen[i]:  # plans reuse their maps: the usual call rewrites none
                    array[i] = obj.getPtr()  # the driver object's own storage
                    seen[i] = obj
            err = launch_ex(state.config_ref, function, state.array_ref, None)
            if err:
                self._launch_failed(err, grid, block, cluster, shared_mem)

        return launch

    def bind_prepared(self, grid: Sequence[int], block: Sequence[int], arg_types: Sequence[Any],
                      *, cluster: Sequence[int] = (1, 1, 1), shared_mem: int = 0) -> Any:
        """``(prepare, launch)`` for one launch shape, for arguments that repeat.

        ``prepare(args)`` builds the kernel's argument array for ``args`` once (a value buffer
        of its own, driver objects by address, kept referenced); ``launch(prepared, stream)``
        launches it on ``stream`` (a ``cudaStream_t`` as an int) and only sets the stream in
        this thread's launch config. Prepared arrays are never written again, so threads may
        share them.
        """
        grid, block, cluster = tuple(grid), tuple(block), tuple(cluster)
        arg_types = tuple(arg_types)
        self.ensure_shared_mem(shared_mem)
        fmt, objects, first, last = _arg_layout(arg_types)
        local = threading.local()
        launch_ex, function = _driver_launch(), self._handle

        def prepare(args: Sequence[Any]) -> _Prepared:
            values, array = _new_arguments(arg_types)
            if fmt:
                struct.pack_into(fmt, values, 8 * first, *args[first:last])
            kept = tuple(args[i] for i in objects)
            for i, obj in zip(objects, kept, strict=True):
                array[i] = obj.getPtr()
            return _Prepared(values, array, kept)

        def launch(prepared: _Prepared, stream: int) -> None:
            config = getattr(local, "config", None)  # (CUlaunchConfig, its attrs, its address)
            if config is None:
                config = local.config = _new_config(grid, block, cluster, shared_mem)
            config[0].hStream = stream
            err = launch_ex(config[2], function, prepared.array_ref, None)
            if err:
                self._launch_failed(err, grid, block, cluster, shared_mem)

        return prepare, launch

    def _launch_failed(self, err: int, grid: tuple[int, ...], block: tuple[int, ...],
                       cluster: tuple[int, ...], shared_mem: int) -> None:
        check((self._cu.CUresult(err),), f"launching {self.entry} grid={grid} block={block} "
                                         f"cluster={cluster} smem={shared_mem}")

    def launch(self, grid: Sequence[int], block: Sequence[int], args: Sequence[Any],
               arg_types: Sequence[Any], *, cluster: Sequence[int] = (1, 1, 1),
               shared_mem: int = 0) -> None:
        """Launch once (convenient; repeated launches should ``bind`` once and reuse it)."""
        self.bind(grid, block, arg_types, cluster=cluster, shared_mem=shared_mem)(args)


class _LaunchConfig(ctypes.Structure):
    """The driver's ``CUlaunchConfig``."""

    _fields_ = [("gridDimX", ctypes.c_uint), ("gridDimY", ctypes.c_uint),
                ("gridDimZ", ctypes.c_uint), ("blockDimX", ctypes.c_uint),
                ("blockDimY", ctypes.c_uint), ("blockDimZ", ctypes.c_uint),
                ("sharedMemBytes", ctypes.c_uint), ("hStream", ctypes.c_void_p),
                ("attrs", ctypes.c_void_p), ("numAttrs", ctypes.c_uint)]


class _LaunchAttribute(ctypes.Structure):
    """The driver's ``CUlaunchAttribute`` (id, 4 bytes of padding, a 64-byte value union),
    seen through its cluster-dimension member."""

    _fields_ = [("id", ctypes.c_int), ("_pad", ctypes.c_char * 4),
                ("cluster", ctypes.c_uint * 3), ("_rest", ctypes.c_char * 52)]


_CLUSTER_DIMENSION = 4  # CU_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION
assert ctypes.sizeof(_LaunchConfig) == 56 and ctypes.sizeof(_LaunchAttribute) == 72


class _LaunchState:
    """One thread's launch buffers for one bound launch."""

    __slots__ = ("array", "array_ref", "attrs", "config", "config_ref", "objects", "values")

    def __init__(self, config: _LaunchConfig, attrs: Any, values: Any, array: Any,
                 objects: list[Any]) -> None:
        self.config, self.attrs, self.values, self.array = config, attrs, values, array
        # the driver objects whose addresses the array holds (kept alive by this reference,
        # so an identical object is the same storage)
        self.objects = objects
        self.config_ref = ctypes.addressof(config)
        self.array_ref = ctypes.addressof(array)


class _Prepared:
    """A kernel argument array built once for one argument tuple (see ``bind_prepared``)."""

    __slots__ = ("array", "array_ref", "kept", "values")

    def __init__(self, values: Any, array: Any, kept: tuple[Any, ...]) -> None:
        self.values, self.array, self.kept = values, array, kept  # kept: the driver objects
        self.array_ref = ctypes.addressof(array)


def _new_config(grid: Sequence[int], block: Sequence[int], cluster: Sequence[int],
                shared_mem: int) -> tuple[_LaunchConfig, Any, int]:
    """A ``CUlaunchConfig`` (with its cluster attribute, kept with it) and its address."""
    config = _LaunchConfig()
    config.gridDimX, config.gridDimY, config.gridDimZ = grid
    config.blockDimX, config.blockDimY, config.blockDimZ = block
    config.sharedMemBytes = shared_mem
    attrs = None
    if tuple(cluster) != (1, 1, 1):
        attrs = _LaunchAttribute()
        attrs.id = _CLUSTER_DIMENSION
        attrs.cluster[:] = tuple(cluster)
        config.attrs = ctypes.addressof(attrs)
        config.numAttrs = 1
    return config, attrs, ctypes.addressof(config)


def _new_arguments(arg_types: Sequence[Any]) -> tuple[Any, Any]:
    """An 8-byte slot per argument and a ``void*[]`` array pointing at the scalars' slots
    (a driver object's entry is written by the caller)."""
    count = max(len(arg_types), 1)
    values = ctypes.create_string_buffer(8 * count)
    array = (ctypes.c_void_p * count)()
    for i, t in enumerate(arg_types):
        if t is not None:
            array[i] = ctypes.addressof(values) + 8 * i
    return values, array


_FORMATS = {ctypes.c_void_p: "Q", ctypes.c_longlong: "q", ctypes.c_int64: "q",
            ctypes.c_ulonglong: "Q", ctypes.c_uint64: "Q", ctypes.c_int: "i4x",
            ctypes.c_int32: "i4x", ctypes.c_uint: "I4x", ctypes.c_uint32: "I4x",
            ctypes.c_float: "f4x", ctypes.c_double: "d"}


def _arg_layout(arg_types: Sequence[Any]) -> tuple[str, tuple[int, ...], int, int]:
    """(struct format of the scalar slots first..last-1, driver-object argument indices,
    first, last): the scalars must be one run, as the kernels here lay them out."""
    objects = tuple(i for i, t in enumerate(arg_types) if t is None)
    scalars = [i for i, t in enumerate(arg_types) if t is not None]
    if not scalars:
        return "", objects, 0, 0
    first, last = scalars[0], scalars[-1] + 1
    if last - first != len(scalars):
        raise DgregError("kernel arguments: driver objects (None types) must come before or "
                         "after every scalar argument, not between them")
    try:
        fmt = "<" + "".join(_FORMATS[arg_types[i]] for i in scalars)
    except KeyError as exc:
        raise DgregError(f"kernel arguments: unsupported ctypes type {exc.args[0]!r}") from None
    return fmt, objects, first, last


@functools.cache
def _driver_launch() -> Any:
    """``cuLaunchKernelEx`` of the driver library cuda-bindings uses, called through ctypes."""
    fn = ctypes.CDLL("libcuda.so.1").cuLaunchKernelEx
    fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
    fn.restype = ctypes.c_int
    return fn


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
