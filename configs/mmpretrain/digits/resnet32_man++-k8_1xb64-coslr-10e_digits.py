# ResNet-32 on the real UCI digits with MAN++, 8 blocks, DGL's objective.
_base_ = '../_base_/resnet32_local_digits.py'
optim_wrapper = dict(local_cfg=dict(objective='dgl', num_blocks=8))
