# ResNet-110 on CIFAR-10, MAN++ with 55 blocks: the stem and each of the 54
# residual units.
_base_ = '../_base_/resnet110_local_cifar10.py'
optim_wrapper = dict(local_cfg=dict(num_blocks=55))
