# MAN++ (K=4) Faster R-CNN on a small ResNet-18 (16 base channels, no
# pretraining), trained for 600 iterations on the generated COCO-format
# shapes (128x128) and evaluated with CocoMetric: the README quick start.
# The bases are those of MMDet's faster-rcnn_r50_fpn_1x_coco.py with the
# dataset swapped; the model is MMDet's with smaller sizes.
_base_ = [
    'mmdet::_base_/models/faster-rcnn_r50_fpn.py',
    '../_base_/datasets/coco_shapes_128.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
    '../_base_/mmman/mmdet_local.py',  # mmman import and runner hooks
]

norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    backbone=dict(
        depth=18,
        stem_channels=16,
        base_channels=16,
        frozen_stages=-1,
        norm_eval=False,
        norm_cfg=norm_cfg,
        init_cfg=None),
    neck=dict(in_channels=[16, 32, 64, 128], out_channels=64, num_outs=4),
    rpn_head=dict(
        in_channels=64,
        feat_channels=64,
        anchor_generator=dict(scales=[4], strides=[4, 8, 16, 32])),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=64),
        bbox_head=dict(in_channels=64, fc_out_channels=256, num_classes=5)),
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=500, max_per_img=200),
        rcnn=dict(sampler=dict(num=128))),
    test_cfg=dict(rpn=dict(nms_pre=300, max_per_img=100)))

# The one field that picks the method: 'e2e' | 'dgl' | 'man' | 'man++'.
optim_wrapper = dict(
    type='LocalOptimWrapper',
    constructor='LocalOptimWrapperConstructor',
    optimizer=dict(lr=0.02),
    local_cfg=dict(
        method='man++',
        num_blocks=4,
        momentum=0.995,
        # CenterNet heatmaps at 0.1 of their loss scale: measured best,
        # docs/results.md#detection-quality
        aux_head=dict(type='DenseDetAuxHead', loss_weight=0.1)))
max_iters = 600
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0,
         end=100),
    dict(type='CosineAnnealingLR', T_max=max_iters, eta_min=2e-4,
         by_epoch=False, begin=0, end=max_iters)
]
train_cfg = dict(
    _delete_=True,
    type='IterBasedTrainLoop',
    max_iters=max_iters,
    val_interval=max_iters)
default_hooks = dict(
    logger=dict(interval=50, log_metric_by_epoch=False),
    checkpoint=dict(by_epoch=False, interval=max_iters))
log_processor = dict(by_epoch=False)
env_cfg = dict(dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0)
