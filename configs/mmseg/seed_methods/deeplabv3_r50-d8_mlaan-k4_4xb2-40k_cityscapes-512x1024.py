# MLAAN: independent probe + cascade through the real next block + leap module
# (wx=0.001, wy=0.999).
_base_ = '../deeplabv3_r50-d8_man++-k4_4xb2-40k_cityscapes-512x1024.py'
# The even split: balance measures no cascade, so it refuses MLAAN.
optim_wrapper = dict(local_cfg=dict(method='mlaan', balance=False))
