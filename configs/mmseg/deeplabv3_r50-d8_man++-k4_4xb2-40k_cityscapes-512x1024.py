# DeepLabV3 R50-D8 on Cityscapes, trained with MAN++ over K=4 local blocks.
# The E2E reference is MMSeg's own config (the first _base_).
# ImageNet weights: `pretrained` (open-mmlab://resnet50_v1c) downloads; offline
# point it at a local file: --cfg-options model.pretrained=/path/r50_v1c.pth
_base_ = [
    'mmseg::deeplabv3/deeplabv3_r50-d8_4xb2-40k_cityscapes-512x1024.py',
    '../_base_/mmman/mmseg_local.py'
]
optim_wrapper = {{_base_.local_optim_wrapper}}
val_evaluator = {{_base_.cityscapes_evaluator}}
test_evaluator = val_evaluator
