# ResNet-110 on SVHN, the plain local baseline (DGL, no momentum auxiliary
# net): the MAN++ config with one field changed.
_base_ = './resnet110_man++-k32_1xb1024-coslr-400e_svhn.py'
optim_wrapper = dict(local_cfg=dict(method='dgl'))
