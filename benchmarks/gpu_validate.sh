#!/usr/bin/env bash
# One device run that validates a submission: install, the whole test suite on the GPU, the
# conformance suite for the sm90 plugin (FFMA pass off, then on), the pass on/off benchmark.
set -uo pipefail
OUT=${OUT:-/tmp/dgreg-out}; mkdir -p "$OUT"
python -m pip install --no-build-isolation --no-deps -q -e . -e plugins/sm90 -e plugins/sm100 2>&1 | grep -v WARNING | tail -2
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
git rev-parse --short HEAD 2>/dev/null | tee "$OUT/commit.txt"
python -m pytest -q -p no:cacheprovider tests specs/conformance 2>&1 | tee "$OUT/pytest.log" | tail -4
for setting in -ffma_interleave ffma_interleave; do
  DGREG_SASS_PASSES=$setting python -m dgreg conformance --plugin sm90 --include-large 2>&1 \
    | tee "$OUT/conformance_sm90_$setting.log" | tail -2
done
DGREG_PLUGINS=sm90 python benchmarks/sass_onoff.py --json "$OUT/sass_onoff.json" 2>&1 | grep -v -i warn | tail -22
