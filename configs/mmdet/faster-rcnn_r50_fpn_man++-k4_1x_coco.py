# Faster R-CNN R50-FPN on COCO trained with MAN++ over K=4 local blocks.
# The E2E reference is MMDet's own config (the first _base_); frozen_stages=1
# and norm_eval come from it: the frozen stem/layer1 get no block of their own.
# ImageNet weights: the base's init_cfg downloads torchvision://resnet50;
# offline: --cfg-options model.backbone.init_cfg.checkpoint=/path/r50.pth
_base_ = [
    'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py',
    '../_base_/mmman/mmdet_local.py'
]
optim_wrapper = {{_base_.local_optim_wrapper}}
