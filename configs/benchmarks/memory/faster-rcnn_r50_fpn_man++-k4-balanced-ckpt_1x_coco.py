# MAN++ K=4, blocks placed by activation memory, every block's units
# checkpointed by mmman (local_cfg.checkpoint).
_base_ = './faster-rcnn_r50_fpn_man++-k4-balanced_1x_coco.py'
optim_wrapper = dict(local_cfg=dict(checkpoint='all'))
