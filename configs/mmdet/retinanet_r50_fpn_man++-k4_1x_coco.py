# RetinaNet R50-FPN (single-stage) on COCO with MAN++ (K=4); E2E reference:
# MMDet's own config. FPN starts at C3 here, so C2 (layer1) is no output:
# the frozen layer1 still gets no block.
# ImageNet weights offline:
# --cfg-options model.backbone.init_cfg.checkpoint=/path/r50.pth
_base_ = [
    'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py',
    '../_base_/mmman/mmdet_local.py'
]
optim_wrapper = {{_base_.local_optim_wrapper}}
