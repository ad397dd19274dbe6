"""TMA multicast over 2-CTA clusters, on and off, for the sm90 kernels (kernel time).

    DGREG_PLUGINS=sm90 python benchmarks/multicast_sm90.py [--suite fp8 bf16 grouped] --json F
    DGREG_ARCH=h200 python benchmarks/multicast_sm90.py --prebuild .jitcache  # CPU

Per shape of ``dgreg bench``'s tables, four variants: the heuristics' pick without multicast
(``multicast=0``), that same tile with A multicast, with B multicast (where legal), and the
heuristics' own pick. Each is checked against the float64 reference on a poisoned D before it
is timed. ``--prebuild DIR`` compiles every variant into a kernel cache on a machine without
a GPU (the device simulated with ``DGREG_ARCH``), to carry to the GPU machine.
"""

from __future__ import annotations

import argparse
import os
import sys

from sm90_forced import checked_kernel_us, forced_plan, op_problem, write_json

import dgreg


def _problems(suite: str):
    """(shape, op, problem) per row of ``dgreg bench``'s table of ``suite``."""
    from dgreg.bench import DENSE_SHAPES, GROUPED_SHAPES

    if suite in ("fp8", "bf16"):
        return [(shape, *op_problem([suite, *shape])) for shape in DENSE_SHAPES]
    return [(shape, *op_problem(list(shape))) for shape, _ in GROUPED_SHAPES]


def variants(op: str, problem, device=None) -> list[tuple[str, str]]:
    """(label, DGREG_SM90_CONFIG) of the variants timed for one problem."""
    base = forced_plan(op, problem, "multicast=0", device).choice.config
    tile = (f"block_m={base.block_m},block_n={base.block_n},split_k={base.split_k},"
            f"stages={base.stages},inflight={int(base.inflight)}")
    out = [("no multicast", "multicast=0")]
    for mc in ("a", "b"):
        try:
            forced_plan(op, problem, f"{tile},multicast={mc}", device)
        except (ValueError, dgreg.DgregError):  # not legal for this tile or grouping
            continue
        out.append((f"same tile, {mc}", f"{tile},multicast={mc}"))
    out.append(("heuristics", ""))
    return out


def prebuild(suites: list[str], cache_dir: str) -> int:
    from sm90_forced import prebuild as build_all

    def jobs():  # evaluated inside build_all's plugin scope
        for suite in suites:
            for _, op, problem in _problems(suite):
                for _, forced in variants(op, problem):
                    yield op, problem, forced

    return build_all(jobs(), cache_dir)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--suite", nargs="+", choices=("fp8", "bf16", "grouped"),
                        default=["fp8", "bf16", "grouped"])
    parser.add_argument("--json")
    parser.add_argument("--prebuild", metavar="DIR")
    args = parser.parse_args()
    if args.prebuild:
        return prebuild(args.suite, args.prebuild)

    import torch

    from dgreg.bench import _SUITES

    rows = []
    for suite in args.suite:
        prepare = _SUITES[suite][0]
        for shape, op, problem in _problems(suite):
            case = prepare(*shape)
            for label, forced in variants(op, problem):
                try:
                    t, res = checked_kernel_us(case, op, problem, forced, f"{shape} {forced}")
                except Exception as exc:  # report and go on: the table shows what failed
                    print(f"{suite:>7} {shape} {label:<14} FAILED: {exc}", flush=True)
                    rows.append({"suite": suite, "shape": list(shape), "variant": label,
                                 "forced": forced, "error": str(exc)})
                    continue
                tflops = case["flops"] / t / 1e6
                rows.append({"suite": suite, "shape": list(shape), "variant": label,
                             "forced": forced, "config": repr(res.choice.config),
                             "kernel_us": t, "tflops": tflops})
                print(f"{suite:>7} {shape!s:<32} {label:<14} {t:9.1f} us {tflops:6.0f} TFLOPS "
                      f"{res.choice.config!r}", flush=True)
    os.environ.pop("DGREG_SM90_CONFIG", None)
    write_json(args.json, {"device": torch.cuda.get_device_name(), "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
