"""SM clock and board power while dgreg and cuBLASLt each run one FP8 shape back to back.

The card is power-limited under FP8 load (its SM clock falls below the boost clock), so two
kernels that take the same number of cycles can differ in time when one draws more power per
cycle. For each shape and library: about ``--seconds`` of back-to-back calls (L2 flushed
between calls, as the bench does), with ``nvidia-smi`` sampling the SM clock and the power
draw every 20 ms; the kernel time per call comes from CUDA events over the same loop (flush
included, then the flush alone subtracted). The two libraries alternate, twice each.
With ``--variants``, dgreg alone instead: each named variant of the timeline probe (see
`timeline_probe_sm90.py`; "base" is the shipped kernel) on the config ``--config`` (the form
of ``DGREG_SM90_CONFIG``), alternating, twice each; the kernels come from the JIT cache
(prebuild them with the probe's ``--prebuild``).

    DGREG_PLUGINS=sm90 python benchmarks/clocks_under_load.py 4096 4096 7168 [M N K ...]
    DGREG_PLUGINS=sm90 python benchmarks/clocks_under_load.py 4096 8448 7168 \
        --variants base,nopromo --config block_m=256,block_n=128,stages=3
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import time

import torch
from sm90_forced import forced_plan, prepared_case
from timeline_probe_sm90 import use

import dgreg
from dgreg.bench import _flush


def _loop_us(fn, seconds: float) -> tuple[float, int]:
    """Mean time per iteration of ``flush(); fn()`` over about ``seconds``, and the count."""
    fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    calls, t0 = 0, time.perf_counter()
    start.record()
    while time.perf_counter() - t0 < seconds:
        for _ in range(20):
            _flush()
            fn()
        calls += 20
        torch.cuda.synchronize()  # keeps the host's clock and the GPU's work together
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) * 1e3 / calls, calls


def _sampled(fn, seconds: float) -> dict[str, float]:
    smi = subprocess.Popen(["nvidia-smi", "--query-gpu=clocks.sm,power.draw",
                            "--format=csv,noheader,nounits", "-lms", "20"],
                           stdout=subprocess.PIPE, text=True)
    try:
        us, calls = _loop_us(fn, seconds)
    finally:
        smi.terminate()
    out, _ = smi.communicate()
    samples = [tuple(float(v) for v in line.split(",")) for line in out.splitlines()
               if line.count(",") == 1 and "N/A" not in line]
    samples = samples[len(samples) // 4:]  # the first quarter: the clock still settling
    return {"us": us, "calls": calls, "mhz": statistics.median(s[0] for s in samples),
            "watts": statistics.median(s[1] for s in samples), "samples": len(samples)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mnk", type=int, nargs="+", help="M N K, once per shape")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--variants", help="timeline probe variants of dgreg's kernel, "
                        "comma-separated, instead of dgreg against cuBLASLt")
    parser.add_argument("--config", default="", help="the forced config of --variants")
    args = parser.parse_args()
    shapes = [tuple(args.mnk[i:i + 3]) for i in range(0, len(args.mnk), 3)]
    print(f"device {torch.cuda.get_device_name()}; {args.seconds:.0f} s per run, "
          f"nvidia-smi every 20 ms (first quarter dropped)")
    flush_us, _ = _loop_us(lambda: None, 1.0)
    print(f"L2 flush alone: {flush_us:.1f} us per iteration (subtracted below)")
    for shape in shapes:
        case = prepared_case(["fp8", *shape])
        case.pop("ref")
        runs = [("ours", "dgreg", None), ("theirs", "cuBLASLt", None)]
        if args.variants:
            runs = [("ours", v, v) for v in args.variants.split(",")]
        for rep in range(2):
            for name, label, variant in runs:
                if variant:
                    use(variant)
                    forced_plan("fp8_gemm", dgreg.Problem(*shape), args.config)
                r = _sampled(case[name], args.seconds)
                kernel = r["us"] - flush_us
                tflops = case["flops"] / kernel / 1e6
                print(f"{' x '.join(map(str, shape)):>18} {label:>9} run {rep + 1}: "
                      f"{kernel:7.1f} us {tflops:6.0f} TFLOPS  SM {r['mhz']:5.0f} MHz  "
                      f"{r['watts']:5.0f} W  ({r['calls']} calls, {r['samples']} samples)  "
                      f"{kernel * r['mhz'] / 1e3:8.1f} kcycles")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
