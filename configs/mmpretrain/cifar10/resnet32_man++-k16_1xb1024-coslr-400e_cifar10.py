# ResNet-32 on CIFAR-10, MAN++ with 16 blocks: the stem and each of the 15
# residual units (the paper's count; the public code's 15 modules, stem merged,
# are num_blocks=15).
_base_ = '../_base_/resnet32_local_cifar10.py'
optim_wrapper = dict(local_cfg=dict(num_blocks=16))
