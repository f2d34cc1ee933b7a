# Pretraining of the segmentation benchmark's backbone (MMSeg's ResNetV1c-18,
# 16 base channels), end to end, on generated image classification (64x64
# crops of one of five shapes on cluttered backgrounds): the CPU-scale stand-in
# for ImageNet pretraining. MMPretrain's ImageClassifier around MMSeg's own
# backbone class, so the weights load into DeepLabV3 by name
# (init_cfg=dict(type='Pretrained', prefix='backbone.')). Run by
# tools/misc/pretrain_benchmark_backbones.sh; not dilated here (as ImageNet
# pretraining is not): dilation changes no weight.
_base_ = [
    '../../_base_/datasets/shapes_cls_32x32.py',
    'mmpretrain::_base_/default_runtime.py'
]
custom_imports = dict(
    imports=['mmman', 'mmseg.models', 'mmdet.models'],
    allow_failed_imports=False)
data_root = 'data/shapes_cls_64'
model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='mmseg.ResNetV1c',
        depth=18,
        stem_channels=16,
        base_channels=16,
        out_indices=(3, ),
        norm_cfg=dict(type='BN', requires_grad=True)),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=5,
        in_channels=128,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0)))
train_dataloader = dict(batch_size=64, dataset=dict(data_root=data_root))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
optim_wrapper = dict(
    optimizer=dict(
        type='SGD', lr=0.1, momentum=0.9, weight_decay=1e-4, nesterov=True))
param_scheduler = dict(
    type='CosineAnnealingLR', T_max=1500, by_epoch=False, begin=0, end=1500)
train_cfg = dict(by_epoch=False, max_iters=1500, val_interval=1500)
val_cfg = dict()
test_cfg = dict()
default_hooks = dict(
    logger=dict(interval=100),
    checkpoint=dict(by_epoch=False, interval=1500, max_keep_ckpts=1))
log_processor = dict(by_epoch=False)
