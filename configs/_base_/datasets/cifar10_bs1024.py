# CIFAR-10 (MMPretrain's CIFAR10: data/cifar10/cifar-10-batches-py, the
# official python version, MD5-checked) at batch 1024. download=False: a
# missing dataset stops the run naming the path instead of downloading.
_base_ = 'mmpretrain::_base_/datasets/cifar10_bs16.py'
train_dataloader = dict(batch_size=1024, dataset=dict(download=False))
val_dataloader = dict(batch_size=1024, dataset=dict(download=False))
test_dataloader = dict(batch_size=1024, dataset=dict(download=False))
