# K=4 blocks balanced by estimated activation memory at the benchmark size.
_base_ = '../../mmdet/faster-rcnn_r50_fpn_man++-k4_1x_coco.py'
optim_wrapper = dict(local_cfg=dict(balance=dict(img_scale=(800, 1333))))
