# ResNeXt-101 32x8d on ImageNet, MAN++ with 2 blocks, the seeds' split: block 1
# ends after layer2.2.
_base_ = '../_base_/resnext101-32x8d_local_in1k.py'
optim_wrapper = dict(local_cfg=dict(boundaries=['layer2.2']))
