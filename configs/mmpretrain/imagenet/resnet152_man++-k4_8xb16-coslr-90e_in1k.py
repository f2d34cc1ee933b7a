# ResNet-152 on ImageNet, MAN++ with 4 blocks, the seeds' split: blocks end
# after layer2.6, layer3.13, layer3.25.
_base_ = '../_base_/resnet152_local_in1k.py'
optim_wrapper = dict(
    local_cfg=dict(boundaries=['layer2.6', 'layer3.13', 'layer3.25']))
