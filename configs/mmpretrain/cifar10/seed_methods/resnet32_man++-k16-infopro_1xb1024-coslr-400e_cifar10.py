# ResNet-32 on CIFAR-10, MAN++ with 16 blocks on InfoPro's objective (image reconstruction + 1c2f head, published K=16 weights):
# the MAN++ config with one field changed.
_base_ = '../resnet32_man++-k16_1xb1024-coslr-400e_cifar10.py'
optim_wrapper = dict(local_cfg=dict(objective='infopro'))
