# ResNet-32 (He et al. 2016) on STL-10, end to end: MMPretrain's own
# ImageClassifier and OptimWrapper, the reference of the local configs beside
# it. MAN paper settings: SGD (Nesterov 0.9, weight decay 1e-4), batch 128, lr
# 0.1, cosine over 400 epochs. CifarResNet and the SVHN/STL10 datasets are
# mmman's: run with mmman's tools/train.py.
_base_ = [
    '../../_base_/models/cifar-resnet32.py',
    '../../_base_/datasets/stl10_bs128.py',
    '../../_base_/schedules/sgd-nesterov_coslr-400e_bs1024.py',
    'mmpretrain::_base_/default_runtime.py'
]
optim_wrapper = dict(optimizer=dict(lr=0.1))
auto_scale_lr = dict(base_batch_size=128)
