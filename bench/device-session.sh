#!/usr/bin/env bash
# One device call: correctness (CUDA, WebGPU) and timings on the GPU machine; logs and JSON go to $OUT.
# Usage there, from the repo root: bash bench/device-session.sh STEP...   (steps: steps side sources dist multi plan grid tseeds wgsteps check webgpu tune bench philox fused shared tshared floors sass torch wgbench pkg triton det wgdet tdet wgfloors frozen validate byitem)
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
export CCEKIT_CACHE=${CCEKIT_CACHE:-/tmp/ccekit-cache}
run() { bash scripts/device-run.sh "$@"; }
# The PyTorch package in out/torch (every dtype, hidden sizes $DVALUES), unless one is there.
package() { [ -d out/torch/ccekit_torch ] || run emit --target torch --dtype all --d-values ${DVALUES:-64,256} --out out/torch > "$OUT/emit.log" 2>&1; }
# checks DEVICE "FLAGS" ...: one ccekit check per flag set, --quick except for CUDA with no flags (the full suite); a summary line each.
checks() { local dev=$1; shift; for f in "$@"; do local q=$([ -z "$f" ] && [ "$dev" = cuda ] || echo --quick); run check --device "$dev" $q $f > "$OUT/check.log" 2>&1; echo "$dev $q $f: $(grep -E "passed" "$OUT/check.log")"; grep FAIL "$OUT/check.log" | head -3; done; }
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv,noheader | tee "$OUT/gpu.txt"
for step in "$@"; do
  case "$step" in
    steps) echo "== every kind of step on CUDA and WebGPU (quick checks)"
      checks cuda "" "--fused" "--frozen-c" "--by-item" "--fused --share 64" "--deterministic --fused"
      checks webgpu "" "--fused" "--frozen-c" "--by-item" "--fused --share 64" ;;
    wgsteps) echo "== WebGPU: every kind of step timed, and the tuner"
      for m in "" "--fused" "--frozen-c" "--by-item"; do tag=webgpu$(echo "$m" | tr -d ' -'); run bench --device webgpu $m --repeats 5 --settings ${WGSETTINGS:-beauty,ml20m,megamarket,small-d} --out "$OUT/bench-$tag.json" > "$OUT/bench-$tag.log" 2>&1; echo "-- $tag"; grep -vE "^Warning|^\{|^wrote" "$OUT/bench-$tag.log" | tail -6; done
      timeout ${TUNE_S:-150} bash scripts/device-run.sh tune --device webgpu --settings small-d --repeats 3 --db "$OUT/tuning-webgpu.json" > "$OUT/tune-webgpu.log" 2>&1; echo "tune rc=$?"; grep -vE "^   \[|^Warning" "$OUT/tune-webgpu.log" | tail -8 ;;
    side) echo "== side by side: package, PyTorch CE-, Node runtime"
      package
      PYTHONUNBUFFERED=1 python3 bench/side_by_side.py --package out/torch --node "bash scripts/device-run.sh" --out "$OUT/side" --merge ${SIDE_ARGS:-} > "$OUT/side.log" 2>&1; tail -${SIDE_TAIL:-40} "$OUT/side.log" ;;
    sources) echo "== candidate sources: the package's CUDA kernels vs its float64 path; in-batch vs PyTorch at N=32768"
      package
      python3 bench/torch_sources_gpu.py out/torch "$OUT/torch-sources.json" > "$OUT/torch-sources.log" 2>&1; grep -E "FAIL|passed" "$OUT/torch-sources.log" | tail -8
      for dt in ${IB_DTYPES:-f16}; do python3 bench/in_batch.py --package out/torch --dtype $dt --out "$OUT/in-batch-$dt" > "$OUT/in-batch-$dt.log" 2>&1; tail -9 "$OUT/in-batch-$dt.log"; done ;;
    dist) echo "== torch.distributed on one GPU: 2 ranks over gloo with CUDA tensors (vocab-parallel, DDP), benchmark"
      package
      for w in vocab ddp; do python3 test/support/torch_dist_check.py out/torch $w 2 cuda > "$OUT/dist-$w.log" 2>&1; echo "$w: $(grep -c '^ok' "$OUT/dist-$w.log") ok, $(grep -c '^FAIL' "$OUT/dist-$w.log") FAIL"; grep FAIL "$OUT/dist-$w.log" | head -3; done
      python3 bench/vocab_parallel.py --package out/torch --settings ${VP_SETTINGS:-beauty,zvuk} --out "$OUT/vocab" > "$OUT/vocab.log" 2>&1; tail -8 "$OUT/vocab.log" ;;
    plan) echo "== SASRec steps at V = 1M, D = 256, length 200: measured; the planner fitted on some, checked on the others"
      package
      for set in fit check; do
        [ $set = fit ] && cfg=${PLAN_FIT:-ce-minus:64:200:256,ce-minus:128:100:1024,ce-minus:256:200:256,ce:4:200:0,ce:8:200:0,ce:16:200:0,cce-per-row:64:200:2048,cce-per-row:256:200:512,cce-per-row:128:200:8192,cce-shared:64:200:2048,cce-shared:128:200:4096,cce-shared:512:200:1024,cce-in-batch:32:200:0,cce-in-batch:64:100:0,cce-in-batch:128:200:0,cce-mixed:32:200:512,cce-mixed:128:50:512,cce-mixed:256:100:1024} \
          || cfg=${PLAN_CHECK:-ce-minus:164:200:512,cce-per-row:164:200:512,cce-shared:164:200:512,ce-minus:256:50:512,ce-minus:32:200:2048,cce-per-row:512:200:256,cce-per-row:128:100:4096,cce-per-row:1024:50:1024,cce-shared:256:100:8192,cce-in-batch:64:200:0,cce-mixed:64:200:512,ce:12:200:0}
        python3 examples/sasrec/calibrate.py --v 1000000 --d 256 --max-len 200 --blocks 2 --ccekit-package out/torch \
          --configs $cfg ${CALIB_ARGS:-} --out "$OUT/plan-$set.json" > "$OUT/plan-$set.log" 2>&1; echo "$set: rc $?"; tail -3 "$OUT/plan-$set.log"
      done
      CCEKIT_CACHE="$OUT" run plan --calibrate "$OUT/plan-fit.json" | tail -${PLAN_TAIL:-16}
      CCEKIT_CACHE="$OUT" run plan --check "$OUT/plan-check.json" --md "$OUT/plan-check.md" --json "$OUT/plan-check-cmp.json"
      CCEKIT_CACHE="$OUT" run plan --budget 40 --svg "$OUT/plan-40.svg" --json "$OUT/plan-40.json" | tail -14 ;;
    multi) echo "== several GPUs (issue 18; needs nvidia-h200-x2 or -x4): DDP scaling, vocab-parallel over NCCL"
      package
      G=$(nvidia-smi -L | wc -l); echo "$G GPUs"; nvidia-smi topo -m > "$OUT/topo.txt" 2>&1
      for P in 1 2 4; do [ $P -le $G ] || continue
        torchrun --nproc_per_node=$P examples/sasrec/train.py --data .data/video.txt --loss cce-minus --ccekit-package out/torch \
          --batch-size $((${DDP_GLOBAL:-512} / P)) --epochs ${DDP_EPOCHS:-5} --hidden 256 --maxlen 200 --amp bf16 --no-progress \
          --out "$OUT/ddp-p$P.json" > "$OUT/ddp-p$P.log" 2>&1; echo "ddp P=$P: rc $?"; tail -2 "$OUT/ddp-p$P.log"; done
      for P in 2 4; do [ $P -le $G ] || continue
        python3 test/support/torch_dist_check.py out/torch vocab $P cuda > "$OUT/dist-vocab-$P.log" 2>&1; echo "vocab P=$P: $(grep -c '^ok' "$OUT/dist-vocab-$P.log") ok, $(grep -c '^FAIL' "$OUT/dist-vocab-$P.log") FAIL"
        python3 bench/vocab_parallel.py --package out/torch --world $P --plain shard --settings beauty,zvuk --out "$OUT/vocab-p$P" > "$OUT/vocab-p$P.log" 2>&1; tail -4 "$OUT/vocab-p$P.log"; done
      [ $G -ge 4 ] && python3 bench/vocab_parallel.py --package out/torch --world 4 --plain shard --adam --settings catalog-100m --repeats 5 \
        --out "$OUT/vocab-100m" > "$OUT/vocab-100m.log" 2>&1; tail -3 "$OUT/vocab-100m.log" ;;
    tseeds) echo "== the package's Triton tile kernels under many seeds: one compile, every later call fast, vs float64"
      package
      python3 bench/triton_seeds.py --package out/torch --calls ${TSEEDS_CALLS:-12} --out "$OUT/triton-seeds.json" \
        > "$OUT/triton-seeds.log" 2>&1; echo "rc $?"; tail -3 "$OUT/triton-seeds.log" ;;
    grid) echo "== SASRec grid (batch x K under a ${GRID_BUDGET:-40} GiB budget): synthetic 1M items and Video Games"
      package
      [ -f .data/syn-1m.txt ] || python3 examples/sasrec/synthetic.py --items 1000000 --users 80000 --mean-length 25 --seed 1 --out .data/syn-1m.txt
      for g in ${GRIDS:-syn}; do
        case $g in syn) data=.data/syn-1m.txt; ep=${SYN_EPOCHS:-3};; video) data=.data/video.txt; ep=${VIDEO_EPOCHS:-8};; esac
        OMP_NUM_THREADS=1 timeout ${GRID_S:-400} python3 examples/sasrec/grid.py --data $data --name $g --out-dir "$OUT/grid-$g" \
          --budget-gib ${GRID_BUDGET:-40} --batches ${GRID_BATCHES:-128,512} --negatives ${GRID_K:-256,1024,4096,16384} \
          --losses ce-minus,cce-minus --seeds ${GRID_SEEDS:-1} ${GRID_EXTRA:+--extra "$GRID_EXTRA"} --parallel ${GRID_PAR:-3} --epochs $ep \
          --ccekit-package out/torch -- --hidden 256 --maxlen 200 --blocks 2 --amp bf16 --eval-every $ep --no-progress \
          > "$OUT/grid-$g.log" 2>&1; echo "$g: rc $?"; tail -${GRID_TAIL:-30} "$OUT/grid-$g/grid.md" 2>/dev/null
      done ;;
    check) echo "== check cuda"; run check --device cuda --out "$OUT/check-cuda.json" > "$OUT/check-cuda.log" 2>&1; grep -E "FAIL|passed" "$OUT/check-cuda.log" | tail -8 ;;
    webgpu) echo "== check webgpu"; run check --device webgpu --quick --out "$OUT/check-webgpu.json" > "$OUT/check-webgpu.log" 2>&1; grep -E "^ccekit|FAIL|passed" "$OUT/check-webgpu.log" | tail -6 ;;
    bench) echo "== bench cuda"; run bench --device cuda --repeats ${REPEATS:-10} ${DB:+--db "$DB"} ${SCHEDULES:+--schedules "$SCHEDULES"} ${SETTINGS:+--settings "$SETTINGS"} --out "$OUT/bench-cuda.json" > "$OUT/bench-cuda.log" 2>&1; grep -vE "^\{|^wrote" "$OUT/bench-cuda.log" | tail -40 ;;
    floors) echo "== floors"; nvcc -O3 -gencode=arch=compute_90a,code=sm_90a bench/floors.cu -o /tmp/floors && for a in "893022 256 268304384" "176450 256 16744448" "15405 256 66977792" "1661327 256 8355840" "100000 64 33488896"; do /tmp/floors $a; done | tee "$OUT/floors.txt" ;;
    sass) echo "== sass"; for f in "$CCEKIT_CACHE"/cuda/*.cubin; do cuobjdump -sass "$f" | grep -oE "(RED|ATOM|LDG|STG)[A-Z0-9._]*" | sort | uniq -c | tr '\n' ' '; echo; done | sort | uniq -c | head -20 ;;
    wgbench) echo "== bench webgpu"; run bench --device webgpu --repeats 5 --settings ${WGSETTINGS:-beauty,megamarket,small-d,ml20m} --out "$OUT/bench-webgpu.json" > "$OUT/bench-webgpu.log" 2>&1; grep -vE "^Warning|^\{|^wrote" "$OUT/bench-webgpu.log" | tail -8 ;;
    tune) echo "== tune"; run tune --device cuda --repeats 3 ${SETTINGS:+--settings "$SETTINGS"} > "$OUT/tune.log" 2>&1; grep -vE "^   \[" "$OUT/tune.log" | tail -14; run tune --device cuda ${SETTINGS:+--settings "$SETTINGS"} > "$OUT/tune2.log" 2>&1; tail -7 "$OUT/tune2.log"; cp "$CCEKIT_CACHE/tuning.json" "$OUT/tuning.json" ;;
    pkg) echo "== torch package"; python3 bench/torch_package_gpu.py out/torch --out "$OUT/torch-package.json" > "$OUT/torch-package.log" 2>&1; grep -v "^FAIL" "$OUT/torch-package.log" | tail -4; grep -c "^FAIL" "$OUT/torch-package.log" ;;
    triton) echo "== triton"; python3 bench/triton_check.py out/triton out/torch > "$OUT/triton.log" 2>&1; tail -6 "$OUT/triton.log" ;;
    philox) echo "== bench cuda philox"; run bench --device cuda --negatives philox --repeats ${REPEATS:-10} ${DB:+--db "$DB"} ${SETTINGS:+--settings "$SETTINGS"} --out "$OUT/bench-cuda-philox.json" > "$OUT/bench-cuda-philox.log" 2>&1; grep -vE "^\{|^wrote" "$OUT/bench-cuda-philox.log" | tail -8 ;;
    fused) echo "== check + bench cuda fused"; run check --device cuda --fused --out "$OUT/check-cuda-fused.json" > "$OUT/check-cuda-fused.log" 2>&1; grep -E "FAIL|passed" "$OUT/check-cuda-fused.log" | tail -4; run bench --device cuda --fused --repeats ${REPEATS:-10} ${DB:+--db "$DB"} --out "$OUT/bench-cuda-fused.json" > "$OUT/bench-cuda-fused.log" 2>&1; grep -vE "^\{|^wrote" "$OUT/bench-cuda-fused.log" | tail -7 ;;
    torch) echo "== torch"; python3 bench/torch_baseline.py --out "$OUT/torch.json" --native --full-ce ${TORCH_SETTINGS:+--settings "$TORCH_SETTINGS"} > "$OUT/torch.log" 2>&1; tail -12 "$OUT/torch.log" ;;
    shared) echo "== check + bench cuda shared (SIMT, untiled)"; run check --device cuda --quick --share 64 --out "$OUT/check-cuda-shared.json" > "$OUT/check-cuda-shared.log" 2>&1; grep -E "FAIL|passed" "$OUT/check-cuda-shared.log" | tail -4; run bench --device cuda --share 64 --negatives philox --fused --repeats ${REPEATS:-10} ${SETTINGS:+--settings "$SETTINGS"} --out "$OUT/bench-cuda-shared.json" > "$OUT/bench-cuda-shared.log" 2>&1; grep -vE "^\{|^wrote" "$OUT/bench-cuda-shared.log" | tail -7 ;;
    tshared) echo "== triton shared (tensor cores)"; python3 bench/triton_shared.py "$OUT/triton-shared.json" out/torch ${TSH_DIRS:-out/tsh/*} > "$OUT/triton-shared.log" 2>&1; grep -E "FAIL|checks" "$OUT/triton-shared.log"; tail -3 "$OUT/triton-shared.log" ;;
    det) echo "== deterministic dC: checks (CUDA, WebGPU), CUDA benches with and without, repeat checks"
      checks cuda "--deterministic" "--deterministic --fused --share 64" "--deterministic --fused"; checks webgpu "--deterministic"
      for v in "" "--share 64"; do for d in "" "--deterministic"; do tag=$(echo "philox-fused$v$d" | tr -d ' -'); run bench --device cuda --negatives philox --fused $v $d --repeat-check --repeats ${REPEATS:-10} ${DB:+--db "$DB"} --out "$OUT/bench-cuda-$tag.json" > "$OUT/bench-cuda-$tag.log" 2>&1; echo "-- $tag"; grep -E "ms \(fwd" "$OUT/bench-cuda-$tag.log" | sed -E 's/\{.*\} regs \{[^}]*\}//'; done; done ;;
    wgdet) echo "== webgpu bench, deterministic dC"; run bench --device webgpu --deterministic --repeats 5 --settings ${WGSETTINGS:-beauty,small-d,ml20m,megamarket} --out "$OUT/bench-webgpu-det.json" > "$OUT/bench-webgpu-det.log" 2>&1; grep -vE "^Warning|^\{|^wrote" "$OUT/bench-webgpu-det.log" | tail -8 ;;
    tdet) echo "== torch package, deterministic dC"; [ -d out/torch/ccekit_torch ] || run emit --target torch --dtype all --db bench/results/tuning-h100.json --out out/torch > /dev/null; python3 bench/torch_deterministic_gpu.py out/torch "$OUT/torch-deterministic.json" > "$OUT/torch-deterministic.log" 2>&1; grep -vE "^ok " "$OUT/torch-deterministic.log" | tail -16 ;;
    wgfloors) echo "== WGSL floors"; CCEKIT_ENTRY=wgsl-floors.mjs run ${WGSETTINGS:-beauty,ml20m,megamarket,zvuk,small-d} 2>&1 | grep -v "^Warning" | tee "$OUT/wgsl-floors.txt" ;;
    byitem) echo "== dC by item (per-row negatives): checks (CUDA, WebGPU), CUDA benches next to the fused kernels, WebGPU, package"
      checks cuda "--by-item"; checks webgpu "--by-item"
      for neg in philox tensor; do for m in "--fused" "--by-item"; do tag=$(echo "$neg$m" | tr -d ' -'); run bench --device cuda --negatives $neg $m --repeats ${REPEATS:-10} ${DB:+--db "$DB"} ${SETTINGS:+--settings "$SETTINGS"} --out "$OUT/bench-cuda-$tag.json" > "$OUT/bench-cuda-$tag.log" 2>&1; echo "-- $tag"; grep -E "ms \(fwd|error" "$OUT/bench-cuda-$tag.log" | sed -E 's/\{"rows.*\} regs/regs/'; done; done
      for m in "" "--by-item"; do tag=webgpu$(echo "$m" | tr -d ' -'); run bench --device webgpu $m --repeats 5 --settings ${WGSETTINGS:-beauty,megamarket,small-d,ml20m} --out "$OUT/bench-$tag.json" > "$OUT/bench-$tag.log" 2>&1; echo "-- $tag"; grep -vE "^Warning|^\{|^wrote" "$OUT/bench-$tag.log" | tail -5; done
      [ -d out/torch/ccekit_torch ] || run emit --target torch --dtype all ${DB:+--db "$DB"} --out out/torch > /dev/null; python3 bench/torch_byitem_gpu.py out/torch "$OUT/torch-byitem.json" > "$OUT/torch-byitem.log" 2>&1; grep -vE "^ok " "$OUT/torch-byitem.log" | tail -17 ;;
    frozen) echo "== frozen item table: forward + dE in one sweep (checks, CUDA benches next to the fused kernels, package)"
      checks cuda "--frozen-c" "--frozen-c --share 64"
      for v in "" "--share 64"; do for m in "--fused" "--frozen-c"; do tag=$(echo "philox$v$m" | tr -d ' -'); run bench --device cuda --negatives philox $v $m --repeats ${REPEATS:-10} ${DB:+--db "$DB"} --out "$OUT/bench-cuda-$tag.json" > "$OUT/bench-cuda-$tag.log" 2>&1; echo "-- $tag"; grep -E "ms \(fwd" "$OUT/bench-cuda-$tag.log" | sed -E 's/\{.*//'; done; done
      [ -d out/torch/ccekit_torch ] || run emit --target torch --dtype all --db bench/results/tuning-h100.json --out out/torch > /dev/null; python3 bench/torch_frozen_gpu.py out/torch "$OUT/torch-frozen.json" > "$OUT/torch-frozen.log" 2>&1; grep -vE "^ok " "$OUT/torch-frozen.log" | tail -24 ;;
    validate) echo "== after a kernel change: the correctness suites on every path (CUDA, WebGPU)"
      checks cuda "" "--fused" "--share 64" "--fused --share 64" "--frozen-c" "--frozen-c --share 64" "--deterministic" "--deterministic --fused --share 64"
      checks webgpu "" "--share 64" "--deterministic" ;;
    *) echo "unknown step $step" ;;
  esac
done
