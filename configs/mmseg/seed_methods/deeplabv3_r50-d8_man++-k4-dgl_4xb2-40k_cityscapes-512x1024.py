# MAN++ on DGL's MLP-SR auxiliary net (image-level class set, BCE) instead of
# the FCN head.
_base_ = '../deeplabv3_r50-d8_man++-k4_4xb2-40k_cityscapes-512x1024.py'
optim_wrapper = dict(local_cfg=dict(objective='dgl'))
