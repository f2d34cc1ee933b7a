# The shipped MAN++ K=4 config with K=4 blocks of equal unit count (the
# shipped configs balance them by activation memory).
_base_ = '../../mmdet/faster-rcnn_r50_fpn_man++-k4_1x_coco.py'
optim_wrapper = dict(local_cfg=dict(balance=None))
