_base_ = '../../mmdet/faster-rcnn_r50_fpn_man++-k4_1x_coco.py'
model = dict(backbone=dict(with_cp=True))
