#!/usr/bin/env bash
# Device run for the sm90 coverage work: install, every GPU test, the sm90 conformance suite.
# A prebuilt kernel cache (DGREG_CACHE_DIR) may be carried along to skip compiles.
set -uo pipefail
OUT=${OUT:-/tmp/dgreg-out}; mkdir -p "$OUT"
python -m pip install --no-build-isolation --no-deps -q -e . -e plugins/sm90 -e plugins/sm100 2>&1 | grep -v WARNING | tail -2
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
git rev-parse --short HEAD 2>/dev/null | tee "$OUT/commit.txt"
python -m pytest -q -p no:cacheprovider -m gpu tests -x --maxfail=5 2>&1 | tee "$OUT/pytest_gpu.log" | tail -15
python -m dgreg conformance --plugin sm90 --include-large 2>&1 | tee "$OUT/conformance_sm90.log" | tail -4
