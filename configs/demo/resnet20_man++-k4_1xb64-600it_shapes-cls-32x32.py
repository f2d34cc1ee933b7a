# MAN++ (K=4) ResNet-20 (He et al. 2016's CIFAR net, mmman's CifarResNet, the
# stem a block unit of its own) in MMPretrain's ImageClassifier, trained for
# 600 iterations on the generated 32x32 shapes (5 classes) and evaluated with
# MMPretrain's Accuracy: `python tools/demo.py --task cls`.
_base_ = [
    '../_base_/models/cifar-resnet32.py',
    '../_base_/datasets/shapes_cls_32x32.py',
    'mmpretrain::_base_/default_runtime.py',
    '../_base_/mmman/mmpretrain_local.py',  # mmman import and runner hooks
]
model = dict(
    backbone=dict(depth=20),
    head=dict(num_classes=5),
    # inside the model too, for code that builds it without a Runner
    data_preprocessor={{_base_.data_preprocessor}})

# The one field that picks the method: 'e2e' | 'dgl' | 'man' | 'man++'.
optim_wrapper = dict(
    type='LocalOptimWrapper',
    constructor='LocalOptimWrapperConstructor',
    optimizer=dict(
        type='SGD', lr=0.1, momentum=0.9, weight_decay=5e-4, nesterov=True),
    local_cfg=dict(
        method='man++',
        num_blocks=4,  # stem + 9 residual units: 3 | 3 | 2 | 2
        momentum=0.995,
        # MMPretrain's GlobalAveragePooling + LinearClsHead: measured better
        # here than the DGL-style ImageClassAuxHead, in accuracy and memory
        # (docs/classification.md)
        aux_head=dict(type='ClsAuxHead')))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0,
         end=50),
    dict(type='CosineAnnealingLR', T_max=600, by_epoch=False, begin=0,
         end=600)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=600, val_interval=600)
val_cfg = dict()
test_cfg = dict()
default_hooks = dict(
    logger=dict(interval=100),
    checkpoint=dict(by_epoch=False, interval=600))
log_processor = dict(by_epoch=False)
env_cfg = dict(dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0)
