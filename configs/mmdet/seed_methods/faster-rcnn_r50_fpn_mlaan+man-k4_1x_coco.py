# MLAAN + MAN: MLAAN with MAN's eta before the independent probe.
_base_ = '../faster-rcnn_r50_fpn_man++-k4_1x_coco.py'
optim_wrapper = dict(local_cfg=dict(method='mlaan+man'))
