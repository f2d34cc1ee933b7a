# MLAAN + MAN: MLAAN plus MAN's own local loss f(Phi(eta(h))), sharing the
# cascade's weight (wy = wm = 0.4995; docs/methods.md).
_base_ = '../faster-rcnn_r50_fpn_man++-k4_1x_coco.py'
# The even split: balance measures no cascade, so it refuses MLAAN.
optim_wrapper = dict(local_cfg=dict(method='mlaan+man', balance=False))
