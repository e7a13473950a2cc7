#!/usr/bin/env bash
# SASRec comparison on the GPU machine (issue: PyTorch CE- vs ccekit CCE-). Data from DATA_DIR (the device call
# carries a copy of ../shared/data as .data/), the ccekit package from out/torch (ccekit emit --target torch).
# Usage: bash examples/sasrec/h100.sh PART   (PART: same-beauty, same-video, shared-beauty, shared-video, sources, large)
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
DATA_DIR=${DATA_DIR:-.data}
common=(--amp ${AMP:-bf16} --hidden 64 --blocks 2 --heads 1 --maxlen 50 --dropout 0.2 --lr 1e-3 --eval-every 5 --patience 2 --no-progress --ccekit-package out/torch)
run() { local name=$1; shift; python3 examples/sasrec/train.py "${common[@]}" "$@" --out "$OUT/sasrec-$name.json" > "$OUT/sasrec-$name.log" 2>&1; tail -1 "$OUT/sasrec-$name.log" | sed "s/^/$name: /"; }
case "$1" in
  same-*)
    ds=${1#same-}
    for seed in 1 2; do
      for loss in ce-minus cce-minus; do
        run "$ds-$loss-s$seed" --data "$DATA_DIR/$ds.txt" --loss $loss --negatives 256 --batch-size 128 --epochs ${EPOCHS:-60} --seed $seed
      done
    done ;;
  shared-*)
    # Row-tile-shared negatives (64 rows a group; SHUFFLE=1: rows grouped in a random order), ccekit only;
    # compare with the per-row runs of same-*.
    ds=${1#shared-}
    for seed in ${SEEDS:-1 2}; do
      run "$ds-cce-minus-shared64${SHUFFLE:+-shuffled}-s$seed" --data "$DATA_DIR/$ds.txt" --loss cce-minus --share-rows 64 ${SHUFFLE:+--shuffle-groups} --negatives 256 --batch-size 128 --epochs ${EPOCHS:-60} --seed $seed
    done ;;
  sources)
    # Candidate sources (issue 15) on both data sets, two seeds, all at once on one GPU: in-batch and mixed
    # (in-batch + K drawn shared by 128 rows) next to per-row CE-, and the masked objective (positions) for
    # ccekit per row next to PyTorch CE-. One CPU thread a run: 20 runs with torch's default threads each
    # oversubscribe the cores (an epoch took ~55 s instead of ~11 s).
    export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} MKL_NUM_THREADS=${MKL_NUM_THREADS:-1}
    for ds in ${DATASETS:-beauty video}; do for seed in ${SEEDS:-1 2}; do
      a=(--data "$DATA_DIR/$ds.txt" --negatives 256 --batch-size 128 --epochs ${EPOCHS:-60} --seed $seed)
      run "$ds-cce-minus-inbatch-s$seed" "${a[@]}" --loss cce-minus --negatives-mode in-batch &
      run "$ds-cce-minus-mixed-s$seed" "${a[@]}" --loss cce-minus --negatives-mode mixed &
      run "$ds-ce-minus-h200-s$seed" "${a[@]}" --loss ce-minus &
      run "$ds-cce-minus-masked-s$seed" "${a[@]}" --loss cce-minus --objective masked &
      run "$ds-ce-minus-masked-s$seed" "${a[@]}" --loss ce-minus --objective masked &
    done; done; wait ;;
  large)
    # K and batch sizes PyTorch CE- cannot hold in 40 GB (its [N, K, D] gathers), ccekit only.
    run beauty-cce-minus-large --data "$DATA_DIR/beauty.txt" --loss cce-minus --negatives 12000 --batch-size 1024 --lr 2e-3 --epochs ${EPOCHS:-100} --seed 1
    run video-cce-minus-large --data "$DATA_DIR/video.txt" --loss cce-minus --negatives 16384 --batch-size 1024 --lr 2e-3 --epochs ${EPOCHS:-100} --seed 1 ;;
esac
