#!/usr/bin/env bash
# After a kernel change: the correctness suites on the GPU machine (CUDA and WebGPU, every path), then a few
# timings next to the committed ones. Usage there: bash scripts/validate-device.sh checks|timings OUTDIR
set -uo pipefail
cd "$(dirname "$0")/.."
export CCEKIT_CACHE=${CCEKIT_CACHE:-/tmp/ccekit-cache}
o=$2; mkdir -p "$o"
run() { bash scripts/device-run.sh "$@"; }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$o/gpu.txt"
case "$1" in
  checks)
    for f in "" "--fused" "--share 64" "--fused --share 64" "--frozen-c" "--frozen-c --share 64" "--deterministic" "--deterministic --fused --share 64"; do
      q=$([ -z "$f" ] && echo "" || echo "--quick")
      run check --device cuda $q $f > "$o/check.log" 2>&1; echo "cuda $q $f: $(grep -E "passed" "$o/check.log")"; grep FAIL "$o/check.log" | head -3
    done
    for f in "" "--share 64" "--deterministic"; do run check --device webgpu --quick $f > "$o/check.log" 2>&1; echo "webgpu --quick $f: $(grep -E "passed" "$o/check.log")"; grep FAIL "$o/check.log" | head -3; done ;;
  timings)
    for m in "--negatives philox --fused" "--negatives philox --fused --share 64" "--negatives philox --frozen-c" "--negatives philox --fused --deterministic"; do
      run bench --device cuda $m --repeats 10 --settings beauty,ml20m,small-d > "$o/bench.log" 2>&1; echo "-- $m"; grep -E "ms \(fwd" "$o/bench.log" | sed -E 's/\{.*//'
    done
    [ -d out/torch/ccekit_torch ] || run emit --target torch --dtype all --db bench/results/tuning-h100.json --out out/torch > /dev/null
    python3 bench/torch_package_gpu.py out/torch --out "$o/torch-package.json" > "$o/torch-package.log" 2>&1; grep -v "^FAIL" "$o/torch-package.log" | tail -6; grep -c "^FAIL" "$o/torch-package.log" ;;
esac
