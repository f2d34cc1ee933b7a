# ResNet-101 K=4 on ImageNet, MAN ablation "parameters without EMA" (paper
# Table 5b): eta is a live copy of the next layer (momentum 0). The paper's
# baseline there is InfoPro; this config keeps the configs' objective
# (InfoPro: local_cfg.objective='infopro').
_base_ = './resnet101_man-k4_8xb16-coslr-90e_in1k.py'
optim_wrapper = dict(
    local_cfg=dict(eta=dict(learnable_copy=False, momentum=0.0)))
