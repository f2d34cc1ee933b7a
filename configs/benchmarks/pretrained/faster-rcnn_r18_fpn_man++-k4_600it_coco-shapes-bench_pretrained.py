# The detection quality benchmark as users train: the backbone starts from
# pretrained weights (tools/misc/pretrain_benchmark_backbones.sh), stem and
# layer1 frozen and BN in eval mode (MMDet's frozen_stages=1, norm_eval=True).
# With stage 1 frozen, K=4 splits the 6 trainable residual units.
_base_ = '../faster-rcnn_r18_fpn_man++-k4_600it_coco-shapes-bench.py'
model = dict(
    backbone=dict(
        frozen_stages=1,
        norm_eval=True,
        init_cfg=dict(
            _delete_=True,  # the from-scratch base sets init_cfg=None
            type='Pretrained',
            checkpoint='checkpoints/pretrain/resnet18-16ch_shapes-cls-64.pth',
            prefix='backbone.')))
