"""Run one FP8 GEMM shape twice (compile + warm call, then the call ncu profiles).

    ncu --kernel-name regex:sm90_fp8 --launch-skip 1 --launch-count 1 \\
        --section SpeedOfLight --section MemoryWorkloadAnalysis --section WarpStateStats \\
        python benchmarks/ncu_one.py M N K
"""

from __future__ import annotations

import sys

import torch

import dgreg

m, n, k = (int(x) for x in sys.argv[1:4])
a8, a_sf = dgreg.per_token_cast_to_fp8(torch.randn(m, k, device="cuda"))
b8, b_sf = dgreg.per_block_cast_to_fp8(torch.randn(n, k, device="cuda"))
a_sf = dgreg.get_mn_major_tma_aligned_tensor(a_sf)
d = torch.empty(m, n, device="cuda", dtype=torch.bfloat16)
for _ in range(2):
    dgreg.gemm(a8, b8, d, a_scale=a_sf, b_scale=b_sf)
torch.cuda.synchronize()
print(dgreg.explain("fp8_gemm", (m, n, k), file=None).choice.config)
