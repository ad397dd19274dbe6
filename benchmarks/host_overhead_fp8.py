"""Host time per dgreg.gemm call of the sm90 FP8 kernel (GPU kept busy, so only the host is
timed), with the same tensors every call, with a rotation of 16 tensor sets, and with new
addresses every call (fresh TMA descriptors); the fast path's steps timed alone and added up
one after another, and the route of calls whose arguments are not kept (build the call,
pack, launch) for comparison; and, for scale, the host time of ``torch._scaled_mm``
(block-wise scales) and of ``torch.mm`` on this host.

    DGREG_PLUGINS=sm90 python benchmarks/host_overhead_fp8.py
"""

from __future__ import annotations

import statistics
import sys
import time

import torch

import dgreg


def per_call_us(fn, calls: int = 400, repeats: int = 5) -> float:
    """Host time per call, measured while a long sleep kernel keeps the GPU busy, so that the
    queue never drains and the host is the only thing timed (fewer calls than the queue holds)."""
    fn(0)
    torch.cuda.synchronize()
    samples = []
    for _ in range(repeats):
        torch.cuda._sleep(200_000_000)  # about 0.1 s of GPU time
        start = time.perf_counter()
        for i in range(calls):
            fn(i)
        samples.append((time.perf_counter() - start) / calls * 1e6)
        torch.cuda.synchronize()
    return statistics.median(samples)


def fast_path(tensors):
    """dgreg.gemm's fast path for these tensors, taken apart: ``key(a8, b8, d, a_sf, b_sf)``
    (the key it builds, checked against the cached entry), ``remake`` and ``runner`` (the
    route of calls whose arguments are not kept: build the call, ``pack``, launch), ``repeat``
    (the route of kept arguments: data pointers, then the plan's launcher) and the launcher's
    own ``launch(prepared, stream)`` with the argument array it keeps for these tensors."""
    from dgreg import api, dispatch
    from dgreg.jit.launch import raw_stream_getter

    a8, b8, d, a_sf, b_sf = tensors
    dgreg.gemm(a8, b8, d, a_scale=a_sf, b_scale=b_sf)
    dgreg.gemm(a8, b8, d, a_scale=a_sf, b_scale=b_sf)  # the launcher keeps these arguments
    (cached, (remake, runner, repeat)), = [(k, v) for k, v in api._FAST.items() if k[0] == "gemm"]
    if "launch_at" not in _cells(repeat):
        raise RuntimeError("the sm90 plan keeps no arguments for these tensors")
    launch_at = _cells(_cells(repeat)["launch_at"])
    stream = raw_stream_getter()(a8.device.index)
    prepared = launch_at["kept"][(a8.data_ptr(), b8.data_ptr(), d.data_ptr(), 0,
                                  a_sf.data_ptr(), b_sf.data_ptr()), stream]
    sig, pin = api._sig, dispatch._pin

    def key(a8, b8, d, a_sf, b_sf):
        return ("gemm", sig(a8), sig(b8), sig(d), False, sig(None), sig(a_sf), sig(b_sf),
                "NT", None, None, None, pin.get())

    if key(*tensors) != cached:
        raise RuntimeError("the timed key is not dgreg.gemm's: update fast_path's key")
    launch = launch_at["launch"]
    return key, remake, runner, repeat, lambda: launch(prepared, stream)


def _cells(fn) -> dict:
    return dict(zip(fn.__code__.co_freevars, (c.cell_contents for c in fn.__closure__),
                    strict=True))


def breakdown(tensors) -> dict[str, float]:
    """Host time of each step of the cached fast path timed alone: building the call's key and
    finding it, the route of kept arguments (``repeat``) and its driver launch alone, and the
    route calls with arguments not kept take (build the call, pack, launch)."""
    from dgreg import api

    key, remake, runner, repeat, launch = fast_path(tensors)
    a8, b8, d, a_sf, b_sf = tensors
    return {"key": per_call_us(lambda i: api._FAST.get(key(*tensors))),
            "repeat": per_call_us(lambda i: repeat(a8, b8, d, None, a_sf, b_sf)),
            "(its launch alone)": per_call_us(lambda i: launch()),
            "(remake, pack, launch instead)":
                per_call_us(lambda i: runner(remake(a8, b8, d, None, a_sf, b_sf)))}


def cumulative(sets, rotate: bool) -> dict[str, float]:
    """The fast path written out here, one step added at a time, so that the steps' costs are
    measured where they run together (``breakdown`` times them alone), and the whole compared
    with ``dgreg.gemm`` itself; with the same tensors every call, or (``rotate``) the sets in
    turn."""
    from dgreg import api

    table = api._FAST
    key, _remake, _runner, repeat, _launch = fast_path(sets[0])
    count = len(sets) if rotate else 1
    for a8, b8, d, a_sf, b_sf in sets[:count]:  # the launcher keeps every set's arguments
        repeat(a8, b8, d, None, a_sf, b_sf)

    def k(i):
        table.get(key(*sets[i % count]))

    def kp(i):
        a8, b8, d, a_sf, b_sf = sets[i % count]
        table.get(key(a8, b8, d, a_sf, b_sf))
        a8.data_ptr() | b8.data_ptr() | d.data_ptr() | a_sf.data_ptr() | b_sf.data_ptr()

    def kr(i):
        a8, b8, d, a_sf, b_sf = sets[i % count]
        table.get(key(a8, b8, d, a_sf, b_sf))
        repeat(a8, b8, d, None, a_sf, b_sf)

    def whole(i):
        a8, b8, d, a_sf, b_sf = sets[i % count]
        dgreg.gemm(a8, b8, d, a_scale=a_sf, b_scale=b_sf)

    return {"key": per_call_us(k), "+ pointers": per_call_us(kp), "+ repeat": per_call_us(kr),
            "dgreg.gemm": per_call_us(whole)}


def vendor(m: int, n: int, k: int) -> dict[str, float]:
    """Host time of torch._scaled_mm (block-wise scales, as the bench calls it) and of torch.mm
    (BF16) at the same shape: what this host charges a library call that launches from C++."""
    from sm90_forced import prepared_case

    fp8 = prepared_case(["fp8", m, n, k])["theirs"]
    a = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n, k, device="cuda", dtype=torch.bfloat16).t()
    return {"torch._scaled_mm": per_call_us(lambda i: fp8()),
            "torch.mm": per_call_us(lambda i: torch.mm(a, b))}


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

    def encode(i):  # what a call at new addresses adds: encoding its 4 TMA maps
        tma._CACHE.clear()
        a8, b8, d, a_sf, _b_sf = sets[i % len(sets)]
        tma.tensor_map_for(a8.view(torch.uint8), (64, 128), 128)
        tma.tensor_map_for(b8.view(torch.uint8), (64, 128), 128)
        tma.tensor_map(a_sf.data_ptr(), "float32", (a_sf.shape[1], m), (m, 1), (1, 64))
        tma.tensor_map_for(d, (64, 64), 128)

    same_us, rotating_us, encode_us = per_call_us(same), per_call_us(rotating), per_call_us(encode)
    parts = breakdown(sets[0])
    from dgreg.bench import kernel_time_us

    a8, b8, d, a_sf, b_sf = sets[0]
    kernel = kernel_time_us(lambda: dgreg.gemm(a8, b8, d, a_scale=a_sf, b_scale=b_sf))[0]
    print(f"device {torch.cuda.get_device_name()}: m{m}n{n}k{k} FP8, kernel {kernel:.2f} us")
    print(f"  same tensors every call:     {same_us:6.2f} us of host time per call")
    print(f"  16 tensor sets in rotation:  {rotating_us:6.2f} us (TMA maps cached per address)")
    print(f"  + at new addresses:          {encode_us:6.2f} us more (encoding 4 TMA maps)")
    print("  parts of a call with the same tensors: " +
          ", ".join(f"{name} {us:.2f} us" for name, us in parts.items()))
    for rotate in (False, True):
        print(f"  the fast path step by step, {'16 sets in rotation' if rotate else 'same tensors'}"
              " (each adds a step): " + ", ".join(f"{name} {us:.2f} us" for name, us in
                                                  cumulative(sets, rotate).items()))
    print("  on this host, same shape: " +
          ", ".join(f"{name} {us:.2f} us" for name, us in vendor(m, n, k).items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
