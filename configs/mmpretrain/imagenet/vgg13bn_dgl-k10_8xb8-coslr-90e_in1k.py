# VGG-13 (with BN) on ImageNet, the plain local baseline (DGL, no momentum
# auxiliary net): the MAN++ config with one field changed.
_base_ = './vgg13bn_man++-k10_8xb8-coslr-90e_in1k.py'
optim_wrapper = dict(local_cfg=dict(method='dgl'))
