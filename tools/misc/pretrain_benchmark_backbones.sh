#!/usr/bin/env bash
# Pretrain the backbones of the detection and segmentation quality benchmarks
# (docs/results.md, "Pretrained setting") end to end on generated shape
# classification and publish their weights where the benchmark configs of
# configs/benchmarks/pretrained/ load them:
#   checkpoints/pretrain/resnet18-16ch_shapes-cls-64.pth      (MMDet ResNet)
#   checkpoints/pretrain/resnetv1c18-16ch_shapes-cls-64.pth   (MMSeg ResNetV1c)
# One command, a few minutes on 2 CPU cores; idempotent (a finished training
# is published, not redone).
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-.venv/bin/python}
OUT=checkpoints/pretrain
# network and its schedule (iterations): the plain-stem ResNet-18 needs 3,000
NETS=(resnet18-16ch:3000 resnetv1c18-16ch:1500)
$PY -c "from mmman.datasets import make_shapes_classification as m; \
m('data/shapes_cls_64', 3000, 500, size=64, seed=3)"
mkdir -p "$OUT"
PIDS=()
for ENTRY in "${NETS[@]}"; do
  NET=${ENTRY%:*} ITERS=${ENTRY#*:}
  if [ ! -f "$OUT/${NET}_shapes-cls-64.pth" ] &&
     [ ! -f "work_dirs/pretrain/$NET/iter_$ITERS.pth" ]; then
    $PY tools/train.py \
      configs/benchmarks/pretrain/${NET}_e2e_${ITERS}it_shapes-cls-64.py \
      --work-dir "work_dirs/pretrain/$NET" &
    PIDS+=($!)
  fi
done
for PID in "${PIDS[@]}"; do wait "$PID"; done  # fails if a training failed
for ENTRY in "${NETS[@]}"; do
  NET=${ENTRY%:*} ITERS=${ENTRY#*:}
  [ -f "$OUT/${NET}_shapes-cls-64.pth" ] ||
    $PY tools/publish_checkpoint.py "work_dirs/pretrain/$NET/iter_$ITERS.pth" \
      "$OUT/${NET}_shapes-cls-64.pth"
done
ls -l "$OUT"
