# MLAAN + MAN: MLAAN with MAN's eta before the independent probe.
_base_ = '../deeplabv3_r50-d8_man++-k4_4xb2-40k_cityscapes-512x1024.py'
optim_wrapper = dict(local_cfg=dict(method='mlaan+man'))
