# ResNeXt-101 32x8d on ImageNet, MAN++ with 4 blocks, the seeds' split: blocks
# end after layer2.2, layer3.8, layer3.16.
_base_ = '../_base_/resnext101-32x8d_local_in1k.py'
optim_wrapper = dict(
    local_cfg=dict(boundaries=['layer2.2', 'layer3.8', 'layer3.16']))
