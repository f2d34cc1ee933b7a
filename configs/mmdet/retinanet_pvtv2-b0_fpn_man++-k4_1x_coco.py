# RetinaNet PVTv2-B0 FPN on COCO with MAN++ (K=4); E2E reference: MMDet's own
# config (the first _base_), whose AdamW is kept.
# Blocks: PVTv2-B0's 12 units (each stage's patch embedding and its 2
# transformer layers), placed by activation memory (the shared default); with
# balance=None split evenly: 3|3|3|3, one stage per block.
# ImageNet weights: the base's init_cfg downloads pvt_v2_b0; offline:
# --cfg-options model.backbone.init_cfg.checkpoint=/path/pvt_v2_b0.pth
_base_ = [
    'mmdet::pvt/retinanet_pvtv2-b0_fpn_1x_coco.py',
    '../_base_/mmman/mmdet_local.py'
]
optim_wrapper = {{_base_.local_optim_wrapper}}
