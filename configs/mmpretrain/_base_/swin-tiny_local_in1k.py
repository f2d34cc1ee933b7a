# Swin-T on ImageNet with local learning: the E2E reference plus mmman's
# MMPretrain snippet (wrapper swapped, optimizer, paramwise_cfg and clip_grad
# kept). Not runnable alone: the configs inheriting it choose the partition
# (num_blocks / boundaries).
_base_ = [
    '../imagenet/swin-tiny_e2e_16xb64_in1k.py',
    '../../_base_/mmman/mmpretrain_local.py'
]
optim_wrapper = {{_base_.local_optim_wrapper}}
