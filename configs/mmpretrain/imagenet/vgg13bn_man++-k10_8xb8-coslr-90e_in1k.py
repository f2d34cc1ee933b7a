# VGG-13 (with BN) on ImageNet, MAN++ with 10 blocks, one per conv layer (the
# classifier trains with the last).
_base_ = '../_base_/vgg13bn_local_in1k.py'
optim_wrapper = dict(local_cfg=dict(num_blocks=10))
