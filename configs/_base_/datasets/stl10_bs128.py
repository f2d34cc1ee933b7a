# STL-10 labelled splits, official binaries data/stl10/{train,test}_{X,y}.bin
# (mmman's STL10 dataset: 5,000 / 8,000 images of 96x96), batch 128.
dataset_type = 'STL10'
data_preprocessor = dict(
    num_classes=10,
    mean=[113.91, 112.15, 103.69],
    std=[66.40, 65.41, 69.18],
    to_rgb=False)  # the images are RGB already
train_pipeline = [
    dict(type='RandomCrop', crop_size=96, padding=12),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [dict(type='PackInputs')]
train_dataloader = dict(
    batch_size=128,
    num_workers=4,
    dataset=dict(
        type=dataset_type,
        data_root='data/stl10',
        split='train',
        pipeline=train_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=True))
val_dataloader = dict(
    batch_size=128,
    num_workers=4,
    dataset=dict(
        type=dataset_type,
        data_root='data/stl10',
        split='test',
        pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False))
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_dataloader = val_dataloader
test_evaluator = val_evaluator
