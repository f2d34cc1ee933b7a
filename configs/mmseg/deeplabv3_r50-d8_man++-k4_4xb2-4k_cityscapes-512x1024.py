# MAN++ Fig. 1(c): ImageNet-pretrained backbone (the base's `pretrained`),
# 4,000 iterations on Cityscapes.
_base_ = './deeplabv3_r50-d8_man++-k4_4xb2-40k_cityscapes-512x1024.py'
train_cfg = dict(max_iters=4000, val_interval=4000)
param_scheduler = [
    dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=4000,
         by_epoch=False)
]
default_hooks = dict(checkpoint=dict(by_epoch=False, interval=4000))
