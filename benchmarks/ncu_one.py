"""Run GEMM shapes for ncu: each shape's call once to compile and warm up, then each once more
inside the NVTX range ``profile`` for ncu to profile (in the order given), with dgreg or with
the vendor library.

    ncu --nvtx --nvtx-include profile/ --kernel-name regex:^sm90_ \\
        --section SpeedOfLight --section MemoryWorkloadAnalysis --section WarpStateStats \\
        python benchmarks/ncu_one.py M N K [M N K ...] [--dtype bf16] [--vendor]

``--vendor``: torch._scaled_mm with block-wise scales (FP8) or torch.mm (BF16) instead (drop
``--kernel-name``: the NVTX range holds only the vendor's kernels).
"""

from __future__ import annotations

import argparse

import torch
from sm90_forced import prepared_case

import dgreg

parser = argparse.ArgumentParser()
parser.add_argument("mnk", type=int, nargs="+", help="M N K, once per shape")
parser.add_argument("--dtype", choices=("fp8", "bf16"), default="fp8")
parser.add_argument("--vendor", action="store_true")
args = parser.parse_args()
if len(args.mnk) % 3:
    parser.error(f"shapes come as M N K triples (got {len(args.mnk)} numbers)")
shapes = [tuple(args.mnk[i:i + 3]) for i in range(0, len(args.mnk), 3)]
cases = [prepared_case([args.dtype, *shape]) for shape in shapes]
fns = [case["theirs"] if args.vendor else case["ours"] for case in cases]
for fn in fns:  # compile, load, warm up: the launches ncu skips
    fn()
torch.cuda.synchronize()
for shape, fn in zip(shapes, fns, strict=True):  # the launches ncu profiles, in this order
    with torch.cuda.nvtx.range("profile"):
        fn()
    torch.cuda.synchronize()
    what = "vendor" if args.vendor else dgreg.explain(f"{args.dtype}_gemm", shape, file=None).choice.config
    print(f"profiled: {' x '.join(map(str, shape))}: {what}", flush=True)
