# ResNet-32 on SVHN with local learning: the E2E reference plus mmman's
# MMPretrain snippet (wrapper swapped, optimizer kept). Not runnable alone: the
# configs inheriting it choose the partition (num_blocks / boundaries).
_base_ = [
    '../svhn/resnet32_e2e_1xb1024-coslr-400e_svhn.py',
    '../../_base_/mmman/mmpretrain_local.py'
]
optim_wrapper = {{_base_.local_optim_wrapper}}
