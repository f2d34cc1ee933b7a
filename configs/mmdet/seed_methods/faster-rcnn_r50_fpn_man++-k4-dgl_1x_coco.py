# MAN++ on DGL's MLP-SR auxiliary net (image-level class set, BCE) instead of
# CenterNet.
_base_ = '../faster-rcnn_r50_fpn_man++-k4_1x_coco.py'
optim_wrapper = dict(local_cfg=dict(objective='dgl'))
