# Swin-T + UPerNet on Cityscapes with MAN++ (K=4). MMSeg ships its Swin-T
# UPerNet for ADE20K only
# (swin/swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512.py);
# the E2E reference is that config's model, AdamW and warm-up + poly schedule
# on MMSeg's Cityscapes data and 40k schedule (as MMSeg's UPerNet R50
# Cityscapes config), i.e. this file with MMSeg's OptimWrapper.
# Blocks: Swin-T's 13 units (patch embedding, 12 Swin blocks; each stage's
# patch merging belongs to the block before it), placed by activation memory
# at the 512x1024 crop: 1|2|9|1 (patch_embed | stage 1 | stages.1.blocks.0 ..
# stages.3.blocks.0 | stages.3.blocks.1 with UPerNet).
# ImageNet weights: init_cfg downloads MMSeg's Swin-T checkpoint (as its ADE20K
# config); offline:
# --cfg-options model.backbone.init_cfg.checkpoint=/path/swin_tiny.pth
_base_ = [
    'mmseg::_base_/models/upernet_swin.py',
    'mmseg::_base_/datasets/cityscapes.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_40k.py',
    '../_base_/mmman/mmseg_local.py'
]
crop_size = (512, 1024)
checkpoint_file = 'https://download.openmmlab.com/mmsegmentation/v0.5/pretrain/swin/swin_tiny_patch4_window7_224_20220317-1cdeb081.pth'  # noqa
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint_file),
        embed_dims=96,
        depths=[2, 2, 6, 2],
        num_heads=[3, 6, 12, 24],
        window_size=7,
        use_abs_pos_embed=False,
        drop_path_rate=0.3,
        patch_norm=True),
    decode_head=dict(in_channels=[96, 192, 384, 768], num_classes=19),
    auxiliary_head=dict(in_channels=384, num_classes=19))
# MMSeg's Swin-T optimizer: AdamW, no weight decay for position embeddings
# and norms.
optim_wrapper = dict(
    _delete_=True,
    type='LocalOptimWrapper',
    constructor='LocalOptimWrapperConstructor',
    optimizer=dict(
        type='AdamW', lr=0.00006, betas=(0.9, 0.999), weight_decay=0.01),
    paramwise_cfg=dict(
        custom_keys={
            'absolute_pos_embed': dict(decay_mult=0.),
            'relative_position_bias_table': dict(decay_mult=0.),
            'norm': dict(decay_mult=0.)
        }),
    local_cfg={{_base_.local_optim_wrapper.local_cfg}})
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0,
         end=1500),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=1500, end=40000,
         by_epoch=False)
]
train_dataloader = dict(batch_size=2)
val_dataloader = dict(batch_size=1)
test_dataloader = val_dataloader
val_evaluator = {{_base_.cityscapes_evaluator}}
test_evaluator = val_evaluator
