# SegFormer MiT-B2 on Cityscapes with MAN++ (K=4); E2E reference: MMSeg's own
# config (the first _base_), whose AdamW, paramwise_cfg and schedule are kept.
# Blocks: MiT-B2's 20 units (each stage's patch embedding and its 3/4/6/3
# transformer layers), placed by activation memory at the 1024x1024 crop:
# 4|2|6|8 (stage 1 | layers.1.0, layers.1.1.0 | layers.1.1.1 .. layers.2.1.1 |
# layers.2.1.2 .. stage 4 with the SegformerHead).
# ImageNet weights: the base's init_cfg downloads mit_b2; offline:
# --cfg-options model.backbone.init_cfg.checkpoint=/path/mit_b2.pth
_base_ = [
    'mmseg::segformer/segformer_mit-b2_8xb1-160k_cityscapes-1024x1024.py',
    '../_base_/mmman/mmseg_local.py'
]
optim_wrapper = {{_base_.local_optim_wrapper}}
val_evaluator = {{_base_.cityscapes_evaluator}}
test_evaluator = val_evaluator
