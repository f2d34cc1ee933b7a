# Swin-T on ImageNet, MAN++ with 4 blocks. E2E reference:
# swin-tiny_e2e_16xb64_in1k.py (MMPretrain's own config).
# Blocks: Swin-T's 16 units (patch embedding, 12 Swin blocks, 3 patch
# mergings), split evenly: 4|4|4|4 (patch_embed, stage 1, its merging |
# stage 2, its merging, stages.2.blocks.0 | stages.2.blocks.1-4 |
# stages.2.blocks.5, merging, stage 4; the head trains with the last).
_base_ = '../_base_/swin-tiny_local_in1k.py'
optim_wrapper = dict(local_cfg=dict(num_blocks=4))
