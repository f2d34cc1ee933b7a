# Mask2Former R50 on Cityscapes (semantic) with MAN++ (K=4); E2E reference:
# MMSeg's own config (the first _base_), whose AdamW, per-key lr/decay
# multipliers and gradient clipping (max_norm 0.01, applied per block) are
# kept. The blocks' local objective is MMSeg's FCNHead on the label map; the
# Mask2Former head trains, as in E2E, from the backbone outputs (those of
# finished blocks detached).
# Blocks: R50's 16 bottlenecks (nothing frozen here), placed by activation
# memory at the 512x1024 crop: 1|3|11|1 (layer1.0 | layer1.1 .. layer2.0 |
# layer2.1 .. layer4.1 | layer4.2 with the pixel and transformer decoders).
# ImageNet weights: the base's init_cfg downloads torchvision://resnet50;
# offline: --cfg-options model.backbone.init_cfg.checkpoint=/path/r50.pth
_base_ = [
    'mmseg::mask2former/mask2former_r50_8xb2-90k_cityscapes-512x1024.py',
    '../_base_/mmman/mmseg_local.py'
]
# mmman's snippet with the balance scale written out: the train crop, the size
# mmman also reads off this pipeline (its multi-scale resize lists shortest
# edges, which fix no size; the crop after it does).
optim_wrapper = dict(
    type='LocalOptimWrapper',
    constructor='LocalOptimWrapperConstructor',
    local_cfg=dict(
        method='man++',
        num_blocks=4,
        momentum=0.995,
        balance=dict(img_scale=(512, 1024)),
        aux_head=dict(type='DecodeAuxHead')))
val_evaluator = {{_base_.cityscapes_evaluator}}
test_evaluator = val_evaluator
