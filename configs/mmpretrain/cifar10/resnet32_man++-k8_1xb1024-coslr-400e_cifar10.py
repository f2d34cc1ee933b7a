# ResNet-32 on CIFAR-10, MAN++ with 8 blocks over the stem + 15 residual units
# (2 units each).
_base_ = '../_base_/resnet32_local_cifar10.py'
optim_wrapper = dict(local_cfg=dict(num_blocks=8))
