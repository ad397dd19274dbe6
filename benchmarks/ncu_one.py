"""Run one GEMM shape twice (compile + warm call, then the call ncu profiles), with dgreg or
with the vendor library.

    ncu --kernel-name regex:sm90_ --launch-skip 1 --launch-count 1 \\
        --section SpeedOfLight --section MemoryWorkloadAnalysis --section WarpStateStats \\
        python benchmarks/ncu_one.py M N K [--dtype bf16] [--vendor]

``--vendor``: torch._scaled_mm with block-wise scales (FP8) or torch.mm (BF16) instead; its
kernel names differ (profile them with ``--kernel-name regex:'gemm|nvjet|xmma'``).
"""

from __future__ import annotations

import argparse

import torch

import dgreg
from dgreg.bench import _SUITES

parser = argparse.ArgumentParser()
parser.add_argument("m", type=int)
parser.add_argument("n", type=int)
parser.add_argument("k", type=int)
parser.add_argument("--dtype", choices=("fp8", "bf16"), default="fp8")
parser.add_argument("--vendor", action="store_true")
args = parser.parse_args()
case = _SUITES[args.dtype][0](args.m, args.n, args.k)
fn = case["theirs"] if args.vendor else case["ours"]
for _ in range(2):
    fn()
torch.cuda.synchronize()
if not args.vendor:
    print(dgreg.explain(f"{args.dtype}_gemm", (args.m, args.n, args.k), file=None).choice.config)
