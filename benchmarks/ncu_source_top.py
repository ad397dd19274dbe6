"""The SASS instructions where a kernel's warps were sampled most often, from ncu's source page.

    ncu --nvtx --nvtx-include profile/ --kernel-name regex:^sm90_fp8 \\
        --section WarpStateStats --section SourceCounters -o src \\
        python benchmarks/ncu_one.py 4096 4096 7168 64 2112 7168
    ncu -i src.ncu-rep --page source --csv --print-source sass > src.csv
    python benchmarks/ncu_source_top.py src.csv [--top 25]

Prints, per profiled kernel (in order), each instruction's share of all warp-state samples.
"""

from __future__ import annotations

import argparse
import csv
import io


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    with open(args.csv) as f:
        text = f.read()
    for number, part in enumerate(text.split('"Kernel Name",')[1:], 1):
        name, body = part.split("\n", 1)
        rows = list(csv.reader(io.StringIO(body)))
        header, data = rows[0], [r for r in rows[1:] if len(r) == len(rows[0])]
        src, samples = header.index("Source"), header.index("Warp Stall Sampling (All Samples)")
        counted = sorted(((float(r[samples] or 0), r[src].strip()) for r in data),
                         key=lambda c: -c[0])  # stable: ties keep the source order
        total = sum(count for count, _ in counted)
        print(f"kernel {number} {name.strip(', ')}: {len(data)} instructions, {total:.0f} samples")
        for count, text in counted[:args.top]:
            print(f"  {count / total * 100:5.1f}%  {text[:100]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
