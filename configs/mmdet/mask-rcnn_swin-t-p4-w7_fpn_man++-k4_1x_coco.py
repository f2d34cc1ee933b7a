# Mask R-CNN Swin-T FPN on COCO (bbox + segm) with MAN++ (K=4); E2E
# reference: MMDet's own config (the first _base_), whose AdamW and
# paramwise_cfg are kept.
# Blocks: Swin-T's 13 units (patch embedding, 12 Swin blocks; each stage's
# patch merging belongs to the block before it), placed by activation memory
# (the shared default); with balance=None split evenly: 4|3|3|3
# (patch_embed, stage 1, stages.1.blocks.0 | stages.1.blocks.1 ..
# stages.2.blocks.1 | stages.2.blocks.2-4 | stages.2.blocks.5, stage 4).
# ImageNet weights: the base's init_cfg downloads swin_tiny_patch4_window7_224;
# offline: --cfg-options model.backbone.init_cfg.checkpoint=/path/swin_t.pth
_base_ = [
    'mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py',
    '../_base_/mmman/mmdet_local.py'
]
optim_wrapper = {{_base_.local_optim_wrapper}}
