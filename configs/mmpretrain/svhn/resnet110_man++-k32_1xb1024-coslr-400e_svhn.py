# ResNet-110 on SVHN, MAN++ with 32 blocks over the stem + 54 residual units (2
# units, the last 9 one).
_base_ = '../_base_/resnet110_local_svhn.py'
optim_wrapper = dict(local_cfg=dict(num_blocks=32))
