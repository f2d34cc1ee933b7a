# ResNet-32 K=16 on CIFAR-10, MAN ablation "parameters without EMA" (paper
# Table 5a, DGL baseline): eta is a live copy of the next layer (momentum 0).
_base_ = './resnet32_man-k16_1xb1024-coslr-400e_cifar10.py'
optim_wrapper = dict(
    local_cfg=dict(eta=dict(learnable_copy=False, momentum=0.0)))
