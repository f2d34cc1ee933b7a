# Mask R-CNN R50-FPN on COCO (bbox + segm) with MAN++ (K=4); E2E reference:
# MMDet's own config. The blocks' local objective is box-level; the mask
# head trains, as in E2E, from the last block's features.
# ImageNet weights offline:
# --cfg-options model.backbone.init_cfg.checkpoint=/path/r50.pth
_base_ = [
    'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py',
    '../_base_/mmman/mmdet_local.py'
]
optim_wrapper = {{_base_.local_optim_wrapper}}
