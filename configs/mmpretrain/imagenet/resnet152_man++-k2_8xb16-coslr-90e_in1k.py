# ResNet-152 on ImageNet, MAN++ with 2 blocks, the seeds' split: block 1 ends
# after layer2.5.
_base_ = '../_base_/resnet152_local_in1k.py'
optim_wrapper = dict(local_cfg=dict(boundaries=['layer2.5']))
