# Faster R-CNN R101-FPN on COCO with MAN++ (K=4); E2E reference: MMDet's own.
# ImageNet weights offline:
# --cfg-options model.backbone.init_cfg.checkpoint=/path/r101.pth
_base_ = [
    'mmdet::faster_rcnn/faster-rcnn_r101_fpn_1x_coco.py',
    '../_base_/mmman/mmdet_local.py'
]
optim_wrapper = {{_base_.local_optim_wrapper}}
