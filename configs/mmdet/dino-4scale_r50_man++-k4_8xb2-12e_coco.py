# DINO (4 scales) R50 on COCO with MAN++ (K=4); E2E reference: MMDet's own
# config (the first _base_), whose AdamW, backbone lr_mult 0.1 and gradient
# clipping (max_norm 0.1, applied per block) are kept. frozen_stages=1 and
# norm_eval come from it: the frozen stem/layer1 get no block of their own.
# Blocks: the 13 trainable bottlenecks of R50 (stem and layer1 frozen), split
# evenly: 4|3|3|3 (layer2 | layer3.0-2 | layer3.3-5 | layer4).
# ImageNet weights: the base's init_cfg downloads torchvision://resnet50;
# offline: --cfg-options model.backbone.init_cfg.checkpoint=/path/r50.pth
_base_ = [
    'mmdet::dino/dino-4scale_r50_8xb2-12e_coco.py',
    '../_base_/mmman/mmdet_local.py'
]
optim_wrapper = {{_base_.local_optim_wrapper}}
