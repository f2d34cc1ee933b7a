_base_ = '../../mmseg/deeplabv3_r50-d8_dgl-k4_4xb2-40k_cityscapes-512x1024.py'
optim_wrapper = dict(local_cfg=dict(num_blocks=2))
