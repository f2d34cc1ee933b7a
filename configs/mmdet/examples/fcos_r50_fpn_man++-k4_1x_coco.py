# A new detector with MAN++: FCOS. Inherit mmman's RetinaNet config (local
# learning wrapper, K=4 blocks, local objective, MMDet's COCO data, schedule
# and backbone) and change only the detector's head.
_base_ = '../retinanet_r50_fpn_man++-k4_1x_coco.py'
model = dict(
    bbox_head=dict(
        _delete_=True,
        type='FCOSHead',
        num_classes=80,
        in_channels=256,
        stacked_convs=4,
        feat_channels=256,
        strides=[8, 16, 32, 64, 128],
        loss_cls=dict(
            type='FocalLoss',
            use_sigmoid=True,
            gamma=2.0,
            alpha=0.25,
            loss_weight=1.0),
        loss_bbox=dict(type='IoULoss', loss_weight=1.0),
        loss_centerness=dict(
            type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0)))
