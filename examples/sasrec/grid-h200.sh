#!/usr/bin/env bash
# The issue-17 SASRec grids on one H200 (D 256, 2 blocks, max length 200, bf16 autocast, fused Adam, 40 GiB a run),
# stage by stage; results under $OUT/grid-NAME (runs/, logs/, grid.json, grid.md, grid.svg).
#   syn       synthetic 1M items (synthetic.py --items 1000000 --users 80000 --mean-length 25 --seed 1), seed 1:
#             batch {128, 512} x K {256, 1024, 4096, 16384}, PyTorch CE- and ccekit per row, 3 epochs
#   syn2      seed 2 at batch 128, K {1024, 4096, 16384}, both methods; PyTorch CE- at K 4096 again with seed 1;
#             all with PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True (CE-'s first K 4096 run ran out of the 40 GiB
#             with 12.8 GiB reserved but unallocated: fragmentation, not its tensors; grid-syn/first-try-*)
#   synextra  seed 1, batch 128: full CE, ccekit shared (K 4096, groups of 128), in-batch, mixed (K 1024)
#   syn3      what syn2 and synextra left (their runs timed out sharing the GPU), in one call of 5 runs at once, all
#             with expandable segments: batch 128, K {1024, 4096, 16384}, seeds 1 and 2, both methods (reports kept
#             from earlier stages are not run again), and synextra's full CE, shared and mixed (seed 1)
#   video     Video Games, seed 1: batch {128, 512} x K {256, 1024, 4096, 16384}, both methods, VIDEO_EPOCHS epochs
# The syn stages share one folder, grid-syn, seeded with the runs committed in bench/results/h200-issue17/grid-syn
# (a run whose report is there with status ok or oom is not run again; timeouts run again).
# Each stage stops starting runs at its deadline (seconds since the script began: SYN2_END, EXTRA_END, VIDEO_END).
set -uo pipefail
OUT=${OUT:-/tmp/out}
PKG=${PKG:-out/torch}
[ -f .data/syn-1m.txt ] || python3 examples/sasrec/synthetic.py --items 1000000 --users 80000 --mean-length 25 \
  --seed 1 --out .data/syn-1m.txt
[ -f .data/video.txt ] || cp ../shared/data/video.txt .data/ 2>/dev/null
export OMP_NUM_THREADS=1
SEED_RUNS=bench/results/h200-issue17/grid-syn/runs
if [ -d $SEED_RUNS ] && [ ! -d "$OUT/grid-syn/runs" ]; then
  mkdir -p "$OUT/grid-syn" && cp -r $SEED_RUNS "$OUT/grid-syn/"
fi
grid() {  # NAME DATA EPOCHS DEADLINE LOG GRID-ARGS...
  local name=$1 data=$2 ep=$3 end=$4 log=$5; shift 5
  local left=$((end - SECONDS))
  [ $left -gt 30 ] || { echo "$name: no time left"; return; }
  timeout $left python3 examples/sasrec/grid.py --data "$data" --name "$name" --out-dir "$OUT/grid-$name" \
    --budget-gib 40 --epochs "$ep" --ccekit-package "$PKG" --max-run-s $((left - 5)) "$@" \
    -- --hidden 256 --maxlen 200 --blocks 2 --amp bf16 --eval-every "$ep" --no-progress > "$OUT/$log.log" 2>&1
  echo "$log: rc $? after ${SECONDS}s"; grep -E "^\[" "$OUT/$log.log" | tail -${TAIL:-24}
}
for stage in "$@"; do
  case $stage in
    syn) grid syn .data/syn-1m.txt 3 ${SYN_END:-560} grid-syn --batches 128,512 --negatives 256,1024,4096,16384 \
      --losses ce-minus,cce-minus --seeds 1 --parallel 3 ;;
    syn2) export PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True
      grid syn .data/syn-1m.txt 3 ${SYN2_END:-420} grid-syn2 --batches 128 --negatives 1024,4096,16384 \
      --losses ce-minus,cce-minus --seeds 2 --extra ce-minus:128:4096 --extra-seeds 1 --parallel 4
      unset PYTORCH_CUDA_ALLOC_CONF ;;
    synextra) grid syn .data/syn-1m.txt 3 ${EXTRA_END:-560} grid-synextra --batches 128 --negatives 4096 \
      --losses cce-minus --seeds 1 --extra ce:128:0,cce-shared:128:4096,cce-in-batch:128:0,cce-mixed:128:1024 \
      --parallel 3 ;;
    syn3) export PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True
      grid syn .data/syn-1m.txt 3 ${SYN3_END:-560} grid-syn3 --batches 128 --negatives 1024,4096,16384 \
      --losses ce-minus,cce-minus --seeds 1,2 --extra ce:128:0,cce-shared:128:4096,cce-mixed:128:1024 --extra-seeds 1 \
      --parallel 5
      unset PYTORCH_CUDA_ALLOC_CONF ;;
    video) grid video .data/video.txt ${VIDEO_EPOCHS:-6} ${VIDEO_END:-545} grid-video --batches 128,512 \
      --negatives 256,1024,4096,16384 --losses ce-minus,cce-minus --seeds 1 --parallel 3 ;;
    *) echo "unknown stage $stage" ;;
  esac
done
