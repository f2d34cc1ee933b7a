# E2E with activation checkpointing.
_base_ = './deeplabv3_r50-d8_e2e_4xb2-40k_cityscapes-512x1024.py'
model = dict(backbone=dict(with_cp=True))
