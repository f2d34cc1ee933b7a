# ConvNeXt-T on ImageNet, MAN++ with 4 blocks. E2E reference:
# convnext-tiny_e2e_32xb128_in1k.py (MMPretrain's own config).
# Blocks: ConvNeXt-T's 22 units (4 downsampling layers, the stem first, and
# 18 ConvNeXt blocks), split evenly: 6|6|5|5 (stem, stage 1, downsampling,
# stages.1.0 | stages.1.1 .. stages.2.2 | stages.2.3-7 | stages.2.8 .. stage 4;
# the head trains with the last).
_base_ = '../_base_/convnext-tiny_local_in1k.py'
optim_wrapper = dict(local_cfg=dict(num_blocks=4))
