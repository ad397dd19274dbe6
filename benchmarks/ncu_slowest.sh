#!/bin/bash
# ncu of the FP8 shapes furthest from their targets (the heuristics' picks), and of cuBLASLt at
# 4096 x 4096 x 7168: throughput against peak, L2 hit rate, tensor pipe activity and the
# warps' stall reasons (cycles per issued instruction, by reason). The kernel names are matched
# from their start: the float64 reference of the check runs cuBLAS kernels named sm90_xmma_*.
#
#     DGREG_PLUGINS=sm90 bash benchmarks/ncu_slowest.sh > ncu.txt
set -u
S="--section SpeedOfLight --section MemoryWorkloadAnalysis --section LaunchStats"
M="--metrics regex:smsp__average_warps_issue_stalled_.*_per_issue_active.ratio,regex:sm__pipe_tensor.*cycles_active.avg.pct_of_peak_sustained_active,smsp__average_warp_latency_per_inst_issued.ratio"
G='Duration|DRAM Throughput|Compute \(SM\) Throughput|L2 Hit Rate|Grid Size|Block Size|Registers Per|stalled_[a-z_]+_per_issue_active|pipe_tensor|latency_per_inst|^  [a-z_0-9]+.*\('
for shape in "64 2112 7168" "128 2112 7168" "128 4096 7168" "4096 2112 7168" "4096 4096 7168"; do
  echo "=== dgreg $shape"
  ncu --clock-control none --kernel-name regex:^sm90_fp8 --launch-skip 1 --launch-count 1 $S $M \
    python benchmarks/ncu_one.py $shape 2>&1 | grep -E "$G|Sm90GemmConfig" | grep -v " 0$"
done
echo "=== cuBLASLt 4096 4096 7168"
ncu --clock-control none --kernel-name regex:nvjet --launch-skip 1 --launch-count 1 $S $M \
  python benchmarks/ncu_one.py 4096 4096 7168 --vendor 2>&1 | grep -E "$G" | grep -v " 0$"
