# ResNet-110 on STL-10, the plain local baseline (DGL, no momentum auxiliary
# net): the MAN++ config with one field changed.
_base_ = './resnet110_man++-k55_1xb128-coslr-400e_stl10.py'
optim_wrapper = dict(local_cfg=dict(method='dgl'))
