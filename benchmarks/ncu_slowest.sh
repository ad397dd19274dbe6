#!/bin/bash
# ncu of the FP8 shapes furthest from their targets (the heuristics' picks), and of cuBLASLt at
# two of them: throughput against peak, L2 hit rate, tensor pipe activity, the SM clock and the
# warps' stall reasons (cycles per issued instruction, by reason). One process per library: each
# shape's call runs once to warm up, then once inside the NVTX range ncu profiles; ncu prints
# the kernels in the order of the shapes below.
#
#     DGREG_PLUGINS=sm90 bash benchmarks/ncu_slowest.sh > ncu.txt
set -u
S="--section SpeedOfLight --section MemoryWorkloadAnalysis --section LaunchStats"
M="--metrics regex:smsp__average_warps_issue_stalled_.*_per_issue_active.ratio,regex:sm__pipe_tensor.*cycles_active.avg.pct_of_peak_sustained_active,smsp__average_warp_latency_per_inst_issued.ratio,sm__cycles_elapsed.avg.per_second"
G='Duration|DRAM Throughput|Compute \(SM\) Throughput|L2 Hit Rate|Grid Size|Block Size|Registers Per|stalled_[a-z_]+_per_issue_active|pipe_tensor|latency_per_inst|cycles_elapsed|^  [a-zA-Z_0-9]+.*\(|profiled'
OURS="64 2112 7168  64 4096 7168  64 7168 2048  64 32768 512  128 2112 7168  128 4096 7168  128 7168 2048  128 32768 512  4096 4096 7168  4096 24576 1536"
THEIRS="128 2112 7168  4096 4096 7168"
echo "=== dgreg: $OURS"
ncu --clock-control none --nvtx --nvtx-include profile/ --kernel-name regex:^sm90_fp8 \
  $S $M python benchmarks/ncu_one.py $OURS 2>&1 | grep -E "$G" | grep -v " 0$"
echo "=== cuBLASLt: $THEIRS"
ncu --clock-control none --nvtx --nvtx-include profile/ \
  $S $M python benchmarks/ncu_one.py $THEIRS --vendor 2>&1 | grep -E "$G" | grep -v " 0$"
