# MLAAN: independent probe + cascade through the real next block + leap module
# (wx=0.001, wy=0.999).
_base_ = '../faster-rcnn_r50_fpn_man++-k4_1x_coco.py'
# The even split: balance measures no cascade, so it refuses MLAAN.
optim_wrapper = dict(local_cfg=dict(method='mlaan', balance=False))
