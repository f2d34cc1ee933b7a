# ResNet-101 on ImageNet, the plain local baseline (DGL, no momentum auxiliary
# net): the MAN++ config with one field changed.
_base_ = './resnet101_man++-k2_8xb16-coslr-90e_in1k.py'
optim_wrapper = dict(local_cfg=dict(method='dgl'))
