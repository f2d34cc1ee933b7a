# PSPNet R50-D8 on Cityscapes with MAN++, K=4.
_base_ = [
    'mmseg::pspnet/pspnet_r50-d8_4xb2-40k_cityscapes-512x1024.py',
    '../_base_/mmman/mmseg_local.py'
]
optim_wrapper = {{_base_.local_optim_wrapper}}
val_evaluator = {{_base_.cityscapes_evaluator}}
test_evaluator = val_evaluator
