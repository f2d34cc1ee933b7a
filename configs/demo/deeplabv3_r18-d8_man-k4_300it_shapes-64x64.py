_base_ = './deeplabv3_r18-d8_man++-k4_300it_shapes-64x64.py'
optim_wrapper = dict(local_cfg=dict(method='man'))
