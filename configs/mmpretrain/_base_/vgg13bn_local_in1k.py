# VGG-13 (with BN) on ImageNet with local learning: the E2E reference plus
# mmman's MMPretrain snippet (wrapper swapped, optimizer kept). Not runnable
# alone: the configs inheriting it choose the partition (num_blocks /
# boundaries).
_base_ = [
    '../imagenet/vgg13bn_e2e_8xb8-coslr-90e_in1k.py',
    '../../_base_/mmman/mmpretrain_local.py'
]
optim_wrapper = {{_base_.local_optim_wrapper}}
