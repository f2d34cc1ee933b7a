# MAN++ Fig. 1(b): Faster R-CNN R50-FPN, ImageNet-pretrained backbone,
# 100 epochs on COCO. MMDet's 1x step schedule stretched to 100 epochs
# (decay at the same fractions: 8/12 and 11/12 of training).
_base_ = './faster-rcnn_r50_fpn_man++-k4_1x_coco.py'
max_epochs = 100
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [
    dict(
        type='LinearLR', start_factor=0.001, by_epoch=False, begin=0,
        end=500),
    dict(
        type='MultiStepLR',
        begin=0,
        end=max_epochs,
        by_epoch=True,
        milestones=[67, 92],
        gamma=0.1)
]
