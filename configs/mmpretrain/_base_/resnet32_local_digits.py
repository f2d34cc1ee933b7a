# ResNet-32 on the UCI digits with local learning: the E2E reference plus
# mmman's MMPretrain snippet (wrapper swapped, optimizer kept). Not runnable
# alone: the configs inheriting it choose the partition.
_base_ = [
    '../digits/resnet32_e2e_1xb64-coslr-10e_digits.py',
    '../../_base_/mmman/mmpretrain_local.py'
]
optim_wrapper = {{_base_.local_optim_wrapper}}
