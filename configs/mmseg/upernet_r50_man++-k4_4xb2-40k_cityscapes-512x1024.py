# UPerNet R50 on Cityscapes with MAN++, K=4.
_base_ = [
    'mmseg::upernet/upernet_r50_4xb2-40k_cityscapes-512x1024.py',
    '../_base_/mmman/mmseg_local.py'
]
optim_wrapper = {{_base_.local_optim_wrapper}}
val_evaluator = {{_base_.cityscapes_evaluator}}
test_evaluator = val_evaluator
