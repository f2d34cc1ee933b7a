# The plain local baseline: same blocks and heads, no momentum auxiliary net.
_base_ = './deeplabv3_r50-d8_man++-k4_4xb2-40k_cityscapes-512x1024.py'
optim_wrapper = dict(local_cfg=dict(method='dgl'))
