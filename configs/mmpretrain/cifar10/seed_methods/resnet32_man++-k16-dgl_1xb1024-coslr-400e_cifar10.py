# ResNet-32 on CIFAR-10, MAN++ with 16 blocks on DGL's MLP-SR auxiliary net, cross-entropy:
# the MAN++ config with one field changed.
_base_ = '../resnet32_man++-k16_1xb1024-coslr-400e_cifar10.py'
optim_wrapper = dict(local_cfg=dict(objective='dgl'))
