# Quality benchmark (docs/results.md): DeepLabV3 R18-d8 on the generated
# shapes benchmark (400 train / 100 val, 64x64, up to 4 shapes), 1000 iters.
# Data: python tools/misc/generate_dataset.py shapes data/shapes_bench \
#           --num-train 400 --num-val 100 --max-shapes 4 --seed 1
_base_ = '../demo/deeplabv3_r18-d8_man++-k4_300it_shapes-64x64.py'
data_root = 'data/shapes_bench'
train_dataloader = dict(dataset=dict(data_root=data_root))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
param_scheduler = [
    dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=1000,
         by_epoch=False)
]
train_cfg = dict(max_iters=1000, val_interval=1000)
default_hooks = dict(
    logger=dict(interval=100),
    checkpoint=dict(interval=1000),
    visualization=dict(type='SegVisualizationHook'))
