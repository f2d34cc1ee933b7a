# One block (num_blocks=1 trains end to end) with its units checkpointed by
# mmman: local_cfg.checkpoint next to MMSeg's with_cp on the same model.
_base_ = '../../mmseg/deeplabv3_r50-d8_man++-k4_4xb2-40k_cityscapes-512x1024.py'
optim_wrapper = dict(
    local_cfg=dict(num_blocks=1, balance=None, checkpoint='all'))
