# The shipped MAN++ K=4 config with every block's units checkpointed by mmman
# (local_cfg.checkpoint: recomputed in each block's own backward).
_base_ = '../../mmdet/faster-rcnn_r50_fpn_man++-k4_1x_coco.py'
optim_wrapper = dict(local_cfg=dict(checkpoint='all'))
