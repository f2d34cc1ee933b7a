# SVHN cropped digits, official data/svhn/{train,test}_32x32.mat (mmman's
# SVHN dataset), batch 1024. No flip: a mirrored digit is another digit.
dataset_type = 'SVHN'
data_preprocessor = dict(
    num_classes=10,
    mean=[111.61, 113.16, 120.57],
    std=[50.50, 51.26, 50.24],
    to_rgb=False)  # the images are RGB already
train_pipeline = [
    dict(type='RandomCrop', crop_size=32, padding=2),
    dict(type='PackInputs'),
]
test_pipeline = [dict(type='PackInputs')]
train_dataloader = dict(
    batch_size=1024,
    num_workers=4,
    dataset=dict(
        type=dataset_type,
        data_root='data/svhn',
        split='train',
        pipeline=train_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=True))
val_dataloader = dict(
    batch_size=1024,
    num_workers=4,
    dataset=dict(
        type=dataset_type,
        data_root='data/svhn',
        split='test',
        pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False))
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_dataloader = val_dataloader
test_evaluator = val_evaluator
