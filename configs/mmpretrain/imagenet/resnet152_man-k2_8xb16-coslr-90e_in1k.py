# ResNet-152 on ImageNet, MAN (no learnable scaling bias): the MAN++ config
# with one field changed.
_base_ = './resnet152_man++-k2_8xb16-coslr-90e_in1k.py'
optim_wrapper = dict(local_cfg=dict(method='man'))
