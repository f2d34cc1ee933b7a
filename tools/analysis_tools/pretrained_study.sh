#!/usr/bin/env bash
# Accuracy where users train (docs/results.md, "Pretrained setting"): the
# segmentation and detection quality benchmarks with pretrained backbones
# (stage 1 frozen, BN in eval mode), K=4, seeds 0-2: E2E, and DGL, MAN and
# MAN++ each with the even and the memory-balanced split. Two trainings at a
# time; resumable (finished runs are read, not redone).
#
#     bash tools/analysis_tools/pretrained_study.sh [seg|det ...]
set -euo pipefail -f  # -f: no globbing of [H,W]
cd "$(dirname "$0")/../.."
PY=${PYTHON:-.venv/bin/python}
SEEDS=${SEEDS:-0 1 2}
JOBS=${JOBS:-2}
L=optim_wrapper.local_cfg
bash tools/misc/pretrain_benchmark_backbones.sh
rows() {  # image scale of the balanced split; the most telling rows first
  local scale=$1
  echo --variant e2e $L.method=e2e
  echo --variant dgl-even $L.method=dgl
  for m in man++ man; do
    echo --variant $m-even $L.method=$m
    echo --variant $m-balanced $L.method=$m $L.balance.img_scale=$scale
  done
  echo --variant dgl-balanced $L.method=dgl $L.balance.img_scale=$scale
}
TASKS=("$@")
[ ${#TASKS[@]} -gt 0 ] || TASKS=(seg det)
for TASK in "${TASKS[@]}"; do
  if [ "$TASK" = seg ]; then
    $PY tools/misc/generate_dataset.py shapes data/shapes_bench \
      --num-train 400 --num-val 100 --max-shapes 4 --seed 1
    C=configs/benchmarks/pretrained/deeplabv3_r18-d8_man++-k4_1000it_shapes-bench_pretrained.py
    X="--metric mIoU --digits 2"
    SCALE='[64,64]'
  else
    $PY tools/misc/generate_dataset.py coco data/coco_shapes_bench \
      --num-train 600 --num-val 150 --max-shapes 6 --seed 1
    C=configs/benchmarks/pretrained/faster-rcnn_r18_fpn_man++-k4_600it_coco-shapes-bench_pretrained.py
    X="--metric coco/bbox_mAP --digits 3"
    SCALE='[128,128]'
  fi
  # shellcheck disable=SC2046  # word splitting of the rows is intended
  $PY tools/analysis_tools/compare_methods.py $C $(rows $SCALE) \
    --seeds $SEEDS --jobs "$JOBS" $X --baseline dgl-even --reference e2e \
    --work-dir work_dirs/pretrained_$TASK \
    --out docs/results_pretrained_$TASK.json
done
