# MAN++ on PredSim's objective (prediction + similarity matching, beta=0.99).
_base_ = '../deeplabv3_r50-d8_man++-k4_4xb2-40k_cityscapes-512x1024.py'
optim_wrapper = dict(local_cfg=dict(objective='predsim'))
