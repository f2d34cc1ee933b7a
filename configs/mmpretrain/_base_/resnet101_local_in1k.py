# ResNet-101 on ImageNet with local learning: the E2E reference plus mmman's
# MMPretrain snippet (wrapper swapped, optimizer kept). Not runnable alone: the
# configs inheriting it choose the partition (num_blocks / boundaries).
_base_ = [
    '../imagenet/resnet101_e2e_8xb16-coslr-90e_in1k.py',
    '../../_base_/mmman/mmpretrain_local.py'
]
optim_wrapper = {{_base_.local_optim_wrapper}}
