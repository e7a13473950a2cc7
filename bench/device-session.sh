#!/usr/bin/env bash
# One device call: correctness (CUDA, WebGPU) and timings on the GPU machine. Logs and JSON go to $OUT.
# Usage (from the repo root there): bash bench/device-session.sh [quick]
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
export CCEKIT_CACHE=/tmp/ccekit-cache
run() { bash scripts/device-run.sh "$@"; }
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv | tee "$OUT/gpu.txt"
echo "== check cuda"; run check --device cuda ${1:+--quick} --out "$OUT/check-cuda.json" > "$OUT/check-cuda.log" 2>&1; tail -3 "$OUT/check-cuda.log"
echo "== check webgpu"; run check --device webgpu --quick --out "$OUT/check-webgpu.json" > "$OUT/check-webgpu.log" 2>&1; grep -v Warning "$OUT/check-webgpu.log" | head -2; tail -2 "$OUT/check-webgpu.log"
