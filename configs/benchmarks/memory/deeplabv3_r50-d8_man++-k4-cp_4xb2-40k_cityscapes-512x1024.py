_base_ = '../../mmseg/deeplabv3_r50-d8_man++-k4_4xb2-40k_cityscapes-512x1024.py'
model = dict(backbone=dict(with_cp=True))
