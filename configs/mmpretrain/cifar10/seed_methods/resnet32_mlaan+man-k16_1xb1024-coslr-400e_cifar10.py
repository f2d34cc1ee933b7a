# ResNet-32 on CIFAR-10, MLAAN combined with MAN, 16 blocks: the MAN++ config
# with one field changed.
_base_ = '../resnet32_man++-k16_1xb1024-coslr-400e_cifar10.py'
optim_wrapper = dict(local_cfg=dict(method='mlaan+man'))
