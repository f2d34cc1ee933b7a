# STL-10 labelled splits, official binaries data/stl10/{train,test}_{X,y}.bin
# (mmman's STL10 dataset: 5,000 / 8,000 images of 96x96), batch 128: the SVHN
# loaders with STL-10's data, statistics, crop and a horizontal flip.
_base_ = './svhn_bs1024.py'
dataset_type = 'STL10'
data_preprocessor = dict(
    mean=[113.91, 112.15, 103.69], std=[66.40, 65.41, 69.18])
train_pipeline = [
    dict(type='RandomCrop', crop_size=96, padding=12),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=128,
    dataset=dict(
        type=dataset_type, data_root='data/stl10', pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=128, dataset=dict(type=dataset_type, data_root='data/stl10'))
test_dataloader = val_dataloader
