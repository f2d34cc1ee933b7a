# ResNet-32 K=16 on CIFAR-10, MAN ablation "EMA only" (paper Tables 4a and
# 5a, DGL baseline): eta is the EMA copy of the next layer alone, without the
# learnable copy.
_base_ = './resnet32_man-k16_1xb1024-coslr-400e_cifar10.py'
optim_wrapper = dict(local_cfg=dict(eta=dict(learnable_copy=False)))
