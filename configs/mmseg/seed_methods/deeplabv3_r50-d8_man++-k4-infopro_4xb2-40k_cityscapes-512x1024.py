# MAN++ on InfoPro's objective (image reconstruction + 1c2f head, published K=4
# weights), with the decoder of InfoPro's Cityscapes code (1x1 to 128 channels,
# then three x2 upsampling stages): its CIFAR decoder upsamples C-channel
# features to the full image first, gigabytes at this size
# (docs/benchmarks.md, "Seed objectives").
_base_ = '../deeplabv3_r50-d8_man++-k4_4xb2-40k_cityscapes-512x1024.py'
optim_wrapper = dict(
    local_cfg=dict(objective=dict(type='infopro', decoder='segmentation')))
