# A ViT-B/16 Faster R-CNN on COCO with MAN++ over transformer blocks: K=4
# places the 12 blocks by activation memory (the shared default; balance=None
# splits them 3|3|3|3) and eta copies the next transformer block.
# MMDet 3.3.0 ships no plain-ViT backbone (ViTDet lives in its projects/,
# outside the package), so the backbone and the multi-scale neck are MMSeg's
# registered VisionTransformer and MultiLevelNeck, inside MMDet's Faster
# R-CNN, dataset, schedule and runtime.
# Pretrained weights: a local file (nothing is downloaded), e.g.
# --cfg-options model.backbone.init_cfg.checkpoint=pretrain/vit-b16.pth
_base_ = [
    'mmdet::_base_/models/faster-rcnn_r50_fpn.py',
    'mmdet::_base_/datasets/coco_detection.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
    '../_base_/mmman/mmdet_local.py'
]
model = dict(
    backbone=dict(
        _delete_=True,
        type='mmseg.VisionTransformer',
        img_size=(800, 1344),
        patch_size=16,
        embed_dims=768,
        num_layers=12,
        num_heads=12,
        mlp_ratio=4,
        out_indices=(2, 5, 8, 11),
        drop_path_rate=0.1,
        norm_cfg=dict(type='LN', eps=1e-6),
        final_norm=True,
        interpolate_mode='bicubic',
        init_cfg=None),
    neck=dict(
        _delete_=True,
        type='mmseg.MultiLevelNeck',
        in_channels=[768, 768, 768, 768],
        out_channels=256,
        scales=[4, 2, 1, 0.5]),
    rpn_head=dict(anchor_generator=dict(strides=[4, 8, 16, 32])))
optim_wrapper = dict(
    _delete_=True,
    type='LocalOptimWrapper',
    constructor='LocalOptimWrapperConstructor',
    optimizer=dict(
        type='AdamW', lr=0.0001, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(
        custom_keys={
            'pos_embed': dict(decay_mult=0.),
            'cls_token': dict(decay_mult=0.),
            'norm': dict(decay_mult=0.)
        }),
    clip_grad={{_base_.local_optim_wrapper.clip_grad}},
    local_cfg={{_base_.local_optim_wrapper.local_cfg}})
