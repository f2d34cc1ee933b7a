# K=4 blocks balanced by estimated activation memory at the benchmark size.
_base_ = '../../mmseg/deeplabv3_r50-d8_man++-k4_4xb2-40k_cityscapes-512x1024.py'
optim_wrapper = dict(local_cfg=dict(balance=dict(img_scale=(512, 1024))))
