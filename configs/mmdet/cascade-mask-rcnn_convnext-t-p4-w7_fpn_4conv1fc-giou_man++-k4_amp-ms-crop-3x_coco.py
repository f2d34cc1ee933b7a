# Cascade Mask R-CNN ConvNeXt-T FPN on COCO (bbox + segm) with MAN++ (K=4);
# E2E reference: MMDet's own config (the _base_), mixed precision and AdamW
# kept (LocalAmpOptimWrapper: needs CUDA, as MMDet's AmpOptimWrapper).
# Blocks: ConvNeXt-T's 22 units (4 downsampling layers, the stem first, and
# 18 ConvNeXt blocks), split evenly: 6|6|5|5 (stem, stage 1, downsampling,
# stages.1.0 | stages.1.1 .. stages.2.2 | stages.2.3-7 | stages.2.8 ..
# stage 4).
# Not kept: MMDet's layer-wise lr decay (LearningRateDecayOptimizerConstructor,
# decay_rate 0.7 over 6 layers). mmman's LocalOptimWrapperConstructor takes the
# constructor's place and applies only MMEngine's default rules (it would
# log the decay_* keys of paramwise_cfg as not applied), so every parameter
# trains at AdamW's lr 2e-4.
# The base sets custom_imports (mmpretrain's ConvNeXt), so this config cannot
# take mmman's from the shared snippet too (two bases may not both set a key):
# it lists both, and mmman's hooks.
# ImageNet weights: the base's init_cfg downloads convnext-tiny; offline:
# --cfg-options model.backbone.init_cfg.checkpoint=/path/convnext-tiny.pth
_base_ = 'mmdet::convnext/cascade-mask-rcnn_convnext-t-p4-w7_fpn_4conv1fc-giou_amp-ms-crop-3x_coco.py'  # noqa
custom_imports = dict(
    imports=['mmpretrain.models', 'mmman'], allow_failed_imports=False)
optim_wrapper = dict(
    _delete_=True,
    type='LocalAmpOptimWrapper',
    constructor='LocalOptimWrapperConstructor',
    optimizer=dict(
        type='AdamW', lr=0.0002, betas=(0.9, 0.999), weight_decay=0.05),
    local_cfg=dict(
        method='man++',
        num_blocks=4,
        momentum=0.995,
        aux_head=dict(type='DenseDetAuxHead', loss_weight=0.1)))
custom_hooks = [
    dict(type='LocalLearningHook'),
    dict(type='BlockCollapseHook', interval=50),
]
