# One block (num_blocks=1 trains end to end) with its units checkpointed by
# mmman: local_cfg.checkpoint next to MMDet's with_cp on the same model.
_base_ = '../../mmdet/faster-rcnn_r50_fpn_man++-k4_1x_coco.py'
optim_wrapper = dict(local_cfg=dict(num_blocks=1, checkpoint='all'))
