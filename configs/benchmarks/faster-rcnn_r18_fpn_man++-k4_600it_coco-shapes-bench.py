# Detection quality benchmark (docs/results.md): the quick-start Faster R-CNN
# (ResNet-18, 16 base channels, from scratch) on the larger generated
# benchmark (600 train / 150 val, 128x128, up to 6 objects), 600 iterations.
# Data: python tools/misc/generate_dataset.py coco data/coco_shapes_bench \
#           --num-train 600 --num-val 150 --max-shapes 6 --seed 1
_base_ = '../demo/faster-rcnn_r18_fpn_man++-k4_600it_coco-shapes-128.py'
data_root = 'data/coco_shapes_bench/'
train_dataloader = dict(dataset=dict(data_root=data_root))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val2017.json')
test_evaluator = val_evaluator
default_hooks = dict(logger=dict(interval=100))
