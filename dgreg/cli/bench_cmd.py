"""``dgreg bench``: dgreg against the vendor library on DeepGEMM's shapes (needs a GPU)."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("bench", help="benchmark dgreg against cuBLASLt (needs a GPU)")
    parser.add_argument("suite", choices=("fp8", "bf16", "grouped", "layouts"), nargs="?",
                        default="fp8",
                        help="fp8: DeepGEMM's 18 dense FP8 1d2d NT shapes against "
                             "torch._scaled_mm; bf16: the same shapes in BF16 against torch.mm; "
                             "grouped: DeepGEMM's MoE contiguous and masked FP8 shapes against "
                             "torch._scaled_grouped_mm (row-wise scales); layouts: FP8 and BF16 "
                             "in NN/TN/TT against the same call in NT")
    parser.add_argument("--json", help="write the full results to this file")
    parser.add_argument("--plot", help="write a PNG of TFLOPS per shape (needs matplotlib)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from dgreg.errors import UnsupportedDeviceError

    if not torch.cuda.is_available():
        raise UnsupportedDeviceError("dgreg bench needs an NVIDIA GPU (torch.cuda.is_available() "
                                     "is False)")
    from dgreg.bench import main

    main(args.json, args.plot, args.suite)
    return 0
