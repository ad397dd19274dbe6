"""What the sm90 split-K reduction costs: the heuristics' split picks timed with parts of the
reduction taken out of the kernel source (timing only: every variant but "base" and "unroll"
writes wrong results on purpose, and only "base" is checked against the reference).

    DGREG_ARCH=h200 python benchmarks/splitk_probe_sm90.py --prebuild .jitcache   # CPU
    DGREG_PLUGINS=sm90 python benchmarks/splitk_probe_sm90.py [--variants base,noread] [--json F]

Variants of ``sm90_gemm.cuh``: base; nofence (no fence before the counter); noread (the last
unit reads no other partial); noreduce (no workspace, fence or counter at all); unroll (the
loop over the other partials unrolled). Also each pick at K / split_k with split_k=1 (one
unit's work without any reduction) with --single.
"""

from __future__ import annotations

import argparse
import sys

from sm90_forced import checked_kernel_us, forced_plan, patch_kernel, prebuild, write_json

import dgreg

_PATCHES = {
    "base": [],
    "nofence": [("__threadfence();  // publish the partial before counting this unit as done", "")],
    "noread": [("for (int other = 0; other < SPLIT_K; ++other) {",
                "for (int other = 0; other < 0; ++other) {")],
    "noreduce": [("            if constexpr (SPLIT_K > 1) {\n                // Partial tiles live",
                  "            if constexpr (false) {\n                // Partial tiles live")],
    "unroll": [("#pragma unroll 1\n                for (int other = 0; other < SPLIT_K; ++other) {",
                "#pragma unroll\n                for (int other = 0; other < SPLIT_K; ++other) {")],
}
SHAPES = [("fp8", 64, 2112, 7168), ("fp8", 128, 2112, 7168), ("fp8", 64, 4096, 7168),
          ("fp8", 128, 4096, 7168), ("fp8", 64, 7168, 16384), ("bf16", 64, 4096, 7168),
          ("bf16", 128, 4096, 7168), ("bf16", 64, 2112, 7168), ("bf16", 128, 2112, 7168)]


def use(variant: str) -> None:
    """Make the sm90 code generator emit ``variant`` of the kernel (its own cache key)."""
    patch_kernel(f"split-K probe variant {variant}", _PATCHES[variant])


def jobs(variants: list[str], single: bool) -> list[tuple[str, str, int, int, int, str]]:
    """(variant, dtype, m, n, k, DGREG_SM90_CONFIG) per run: the heuristics' split picks."""
    out = []
    for dtype, m, n, k in SHAPES:
        cfg = forced_plan(f"{dtype}_gemm", dgreg.Problem(m, n, k), "").choice.config
        if cfg.split_k == 1:
            continue
        forced = (f"block_m={cfg.block_m},block_n={cfg.block_n},split_k={cfg.split_k},"
                  f"stages={cfg.stages},inflight={int(cfg.inflight)}")
        out += [(v, dtype, m, n, k, forced) for v in variants]
        if single:
            out.append(("base", dtype, m, n, 128 * (k // 128 // cfg.split_k),
                        forced.replace(f"split_k={cfg.split_k}", "split_k=1")))
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--variants", default=",".join(_PATCHES))
    parser.add_argument("--single", action="store_true")
    parser.add_argument("--prebuild", metavar="DIR")
    parser.add_argument("--json")
    args = parser.parse_args()
    variants = args.variants.split(",")
    runs = jobs(variants, args.single)
    if args.prebuild:
        for variant in variants:
            use(variant)
            prebuild(((f"{d}_gemm", dgreg.Problem(m, n, k), forced)
                      for v, d, m, n, k, forced in runs if v == variant), args.prebuild)
        return 0
    from dgreg.bench import _SUITES

    rows = []
    for round_ in range(2):
        for variant, dtype, m, n, k, forced in runs:
            use(variant)
            us, _ = checked_kernel_us(_SUITES[dtype][0](m, n, k), f"{dtype}_gemm",
                                      dgreg.Problem(m, n, k), forced,
                                      f"{dtype} {m} {n} {k} {forced}", calls=30,
                                      check=variant in ("base", "unroll"))
            rows.append({"round": round_, "variant": variant, "shape": [dtype, m, n, k],
                         "config": forced, "us": us})
            print(f"{round_} {variant:9s} {dtype:4s} {m:5d} {n:6d} {k:6d} {forced:58s} {us:8.2f}",
                  flush=True)
    write_json(args.json, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
