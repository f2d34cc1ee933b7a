# ViT-B/16 + UPerNet on Cityscapes with MAN++ over transformer blocks: K=4
# splits the 12 blocks 3|3|3|3; eta copies the next transformer block.
# Pretrained weights: a local file (nothing is downloaded), e.g.
# --cfg-options model.pretrained=pretrain/vit_base_patch16_224.pth
_base_ = [
    'mmseg::_base_/models/upernet_vit-b16_ln_mln.py',
    'mmseg::_base_/datasets/cityscapes.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_40k.py',
    '../_base_/mmman/mmseg_local.py'
]
crop_size = (512, 1024)
model = dict(
    data_preprocessor=dict(size=crop_size),
    pretrained=None,
    backbone=dict(img_size=crop_size),
    decode_head=dict(num_classes=19),
    auxiliary_head=dict(num_classes=19))

optim_wrapper = dict(
    _delete_=True,
    type='LocalOptimWrapper',
    constructor='LocalOptimWrapperConstructor',
    optimizer=dict(
        type='AdamW', lr=0.00006, betas=(0.9, 0.999), weight_decay=0.01),
    paramwise_cfg=dict(
        custom_keys={
            'pos_embed': dict(decay_mult=0.),
            'cls_token': dict(decay_mult=0.),
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
