# MAN++ on PredSim's objective (prediction + similarity matching, beta=0.99).
_base_ = '../faster-rcnn_r50_fpn_man++-k4_1x_coco.py'
optim_wrapper = dict(local_cfg=dict(objective='predsim'))
