# ResNet-101 on ImageNet, MAN++ with 2 blocks, the seeds' split: block 1 ends
# after layer2.0.
_base_ = '../_base_/resnet101_local_in1k.py'
optim_wrapper = dict(local_cfg=dict(boundaries=['layer2.0']))
