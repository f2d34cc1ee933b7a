# MAN++ on InfoPro's objective (image reconstruction + 1c2f head, published K=4
# weights).
_base_ = '../faster-rcnn_r50_fpn_man++-k4_1x_coco.py'
optim_wrapper = dict(local_cfg=dict(objective='infopro'))
