# The shipped MAN++ K=4 config (balanced) with every block's units
# checkpointed by mmman (local_cfg.checkpoint).
_base_ = '../../mmseg/deeplabv3_r50-d8_man++-k4_4xb2-40k_cityscapes-512x1024.py'
optim_wrapper = dict(local_cfg=dict(checkpoint='all'))
