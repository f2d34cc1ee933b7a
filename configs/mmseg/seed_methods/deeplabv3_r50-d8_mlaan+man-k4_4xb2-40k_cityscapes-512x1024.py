# MLAAN + MAN: MLAAN plus MAN's own local loss f(Phi(eta(h))), sharing the
# cascade's weight (wy = wm = 0.4995; docs/methods.md).
_base_ = '../deeplabv3_r50-d8_man++-k4_4xb2-40k_cityscapes-512x1024.py'
# The even split: balance measures no cascade, so it refuses MLAAN.
optim_wrapper = dict(local_cfg=dict(method='mlaan+man', balance=False))
