# ResNet-110 on CIFAR-10 with local learning: the E2E reference plus mmman's
# MMPretrain snippet (wrapper swapped, optimizer kept). Not runnable alone: the
# configs inheriting it choose the partition (num_blocks / boundaries).
_base_ = [
    '../cifar10/resnet110_e2e_1xb1024-coslr-400e_cifar10.py',
    '../../_base_/mmman/mmpretrain_local.py'
]
optim_wrapper = {{_base_.local_optim_wrapper}}
