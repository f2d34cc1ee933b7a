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
optim_wrapper = dict(  # DINO's own clipping and an even split (its
    # multi-scale choice of resizes fixes no size to balance at)
    type='LocalOptimWrapper',
    constructor='LocalOptimWrapperConstructor',
    clip_grad=dict(max_norm=0.1, norm_type=2),
    local_cfg=dict(
        method='man++',
        num_blocks=4,
        momentum=0.995,
        balance=None,
        aux_head=dict(type='DenseDetAuxHead', loss_weight=0.1)))
