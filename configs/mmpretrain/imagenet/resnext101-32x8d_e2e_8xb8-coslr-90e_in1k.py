# ResNeXt-101 32x8d on ImageNet, end to end: MMPretrain's own config (model,
# data, runtime) with the MAN paper's schedule: SGD (Nesterov 0.9, weight decay
# 1e-4), batch 64 (8 GPUs x 8), lr 0.025, cosine over 90 epochs.
_base_ = 'mmpretrain::resnext/resnext101-32x8d_8xb32_in1k.py'
train_dataloader = dict(batch_size=8)
optim_wrapper = dict(
    optimizer=dict(
        type='SGD', lr=0.025, momentum=0.9, weight_decay=1e-4, nesterov=True))
param_scheduler = dict(
    _delete_=True, type='CosineAnnealingLR', T_max=90, by_epoch=True, begin=0,
    end=90)
train_cfg = dict(max_epochs=90)
auto_scale_lr = dict(base_batch_size=64)
