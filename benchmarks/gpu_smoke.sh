#!/usr/bin/env bash
# One device run: install, GPU tests, CLI on the GPU, JIT overhead numbers. Writes logs to $OUT.
set -uo pipefail
OUT=${OUT:-/tmp/dgreg-out}; mkdir -p "$OUT"
python -m pip install --no-build-isolation --no-deps -q -e . -e plugins/sm90 -e plugins/sm100 2>&1 | grep -v WARNING | tail -2
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
python -m pytest -q -p no:cacheprovider ${PYTEST_ARGS:-tests} 2>&1 | tee "$OUT/pytest.log" | tail -25
for cmd in "info" "plugins" "explain fp8_gemm --m 128 --n 4096 --k 7168" "demo" "demo --dtype bf16"; do
  echo "== dgreg $cmd" | tee -a "$OUT/cli.log"; python -m dgreg $cmd 2>&1 | tee -a "$OUT/cli.log" | tail -8
done
python benchmarks/jit_overhead.py --json "$OUT/jit_overhead.json" 2>&1 | tee "$OUT/jit_overhead.txt"
