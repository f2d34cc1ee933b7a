#!/bin/bash
# CUDA memory/time of E2E, E2E with_cp, MAN++ K=4 and MAN++ K=4 + local_cfg.checkpoint on Faster R-CNN R50-FPN
# (2 x 800x1333) and DeepLabV3 R50-D8 (2 x 512x1024), on a lent GPU machine (docs/benchmarks.md, CUDA section).
# Here: bash ../shared/gpu/prepare.sh .gpu; then through the device tool, carrying .gpu, with $OUT set:
#   bash tools/misc/gpu_memory_run.sh > $OUT/run.txt 2>&1
# The image's transformers release breaks mmpretrain's blip import (PreTrainedModel is None there), so a
# dist-info of version 0.0.0 hides it from mmpretrain's multimodal check.
set -u
PY=python3; O=$OUT
$PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .gpu/whl/*.whl || exit 1
cp .gpu/mmcv_ext_shim.py /tmp/site/mmcv/_ext.py
mkdir -p /tmp/site/transformers-0.0.0.dist-info
printf 'Metadata-Version: 2.1\nName: transformers\nVersion: 0.0.0\n' > /tmp/site/transformers-0.0.0.dist-info/METADATA
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 MPLBACKEND=Agg
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
$PY -c "import mmpretrain.models, mmman, torch; print('import ok', torch.__version__)" 2>&1 | tail -1
BM=tools/analysis_tools/benchmark_memory.py; M=configs/benchmarks/memory
BN="model.backbone.norm_cfg.type=BN model.decode_head.norm_cfg.type=BN model.auxiliary_head.norm_cfg.type=BN"
T0=$(date +%s)
timeout 140 $PY $BM $M/faster-rcnn_r50_fpn_e2e_1x_coco.py $M/faster-rcnn_r50_fpn_e2e-cp_1x_coco.py configs/mmdet/faster-rcnn_r50_fpn_man++-k4_1x_coco.py $M/faster-rcnn_r50_fpn_man++-k4-ckpt_1x_coco.py $M/faster-rcnn_r50_fpn_man++-k4-balanced-ckpt_1x_coco.py --img-scale 800 1333 --batch-size 2 --iters 8 --warmup 2 --device cuda --out $O/det.json --md $O/det.md > $O/det.log 2>&1
echo "det rc=$? $(( $(date +%s)-T0 ))s"; T0=$(date +%s)
timeout 100 $PY $BM $M/deeplabv3_r50-d8_e2e_4xb2-40k_cityscapes-512x1024.py $M/deeplabv3_r50-d8_e2e-cp_4xb2-40k_cityscapes-512x1024.py configs/mmseg/deeplabv3_r50-d8_man++-k4_4xb2-40k_cityscapes-512x1024.py $M/deeplabv3_r50-d8_man++-k4-ckpt_4xb2-40k_cityscapes-512x1024.py --img-scale 512 1024 --batch-size 2 --iters 8 --warmup 2 --device cuda --cfg-options $BN --out $O/seg.json --md $O/seg.md > $O/seg.log 2>&1
echo "seg rc=$? $(( $(date +%s)-T0 ))s"
