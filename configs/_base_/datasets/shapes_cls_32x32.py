# Generated shapes classification (mmman.datasets.make_shapes_classification):
# 32x32 images of one shape each (cross / disc / square / star / triangle, the
# folder names; MMPretrain's CustomDataset sorts them), random size, colour
# and rotation on a cluttered background.
dataset_type = 'CustomDataset'
data_root = 'data/shapes_cls'
data_preprocessor = dict(
    num_classes=5, mean=[127.5] * 3, std=[127.5] * 3, to_rgb=True)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]
train_dataloader = dict(
    batch_size=64,
    num_workers=0,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix='train',
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=100,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix='val',
        pipeline=test_pipeline))
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_dataloader = val_dataloader
test_evaluator = val_evaluator
