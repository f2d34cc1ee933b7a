# MAN++ K=4 split by unit count, every block's units checkpointed by mmman
# (local_cfg.checkpoint).
_base_ = './deeplabv3_r50-d8_man++-k4-even_4xb2-40k_cityscapes-512x1024.py'
optim_wrapper = dict(local_cfg=dict(checkpoint='all'))
