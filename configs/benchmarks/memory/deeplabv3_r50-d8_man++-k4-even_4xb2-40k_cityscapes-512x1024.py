# The shipped MAN++ K=4 config with K=4 blocks of equal unit count (the
# shipped configs balance them by activation memory).
_base_ = '../../mmseg/deeplabv3_r50-d8_man++-k4_4xb2-40k_cityscapes-512x1024.py'
optim_wrapper = dict(local_cfg=dict(balance=None))
