# ResNeXt-101 32x8d on ImageNet, MAN (no learnable scaling bias): the MAN++
# config with one field changed.
_base_ = './resnext101-32x8d_man++-k2_8xb8-coslr-90e_in1k.py'
optim_wrapper = dict(local_cfg=dict(method='man'))
