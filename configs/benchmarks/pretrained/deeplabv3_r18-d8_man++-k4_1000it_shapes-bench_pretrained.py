# The segmentation quality benchmark as users train: the backbone starts from
# pretrained weights (tools/misc/pretrain_benchmark_backbones.sh), stem and
# layer1 frozen and BN in eval mode, as MMDet/MMSeg's ImageNet configs do.
# With stage 1 frozen, K=4 splits the 6 trainable residual units.
_base_ = '../deeplabv3_r18-d8_man++-k4_1000it_shapes-bench.py'
model = dict(
    backbone=dict(
        frozen_stages=1,
        norm_eval=True,
        init_cfg=dict(
            type='Pretrained',
            checkpoint='checkpoints/pretrain/resnetv1c18-16ch_shapes-cls-64.pth',
            prefix='backbone.')))
