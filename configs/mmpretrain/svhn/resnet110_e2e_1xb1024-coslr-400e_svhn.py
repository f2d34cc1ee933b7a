# ResNet-110 (He et al. 2016) on SVHN, end to end: MMPretrain's own
# ImageClassifier and OptimWrapper, the reference of the local configs beside
# it. MAN paper settings: SGD (Nesterov 0.9, weight decay 1e-4), batch 1024, lr
# 0.8, cosine over 400 epochs. CifarResNet and the SVHN/STL10 datasets are
# mmman's: run with mmman's tools/train.py.
_base_ = [
    '../../_base_/models/cifar-resnet110.py',
    '../../_base_/datasets/svhn_bs1024.py',
    '../../_base_/schedules/sgd-nesterov_coslr-400e_bs1024.py',
    'mmpretrain::_base_/default_runtime.py'
]
