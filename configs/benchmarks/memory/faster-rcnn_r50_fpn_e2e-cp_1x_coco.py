# E2E with activation checkpointing, the alternative users pick.
_base_ = './faster-rcnn_r50_fpn_e2e_1x_coco.py'
model = dict(backbone=dict(with_cp=True))
