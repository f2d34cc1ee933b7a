# MAN++ on InfoPro's objective (image reconstruction + 1c2f head, published K=4
# weights), with the decoder of InfoPro's Cityscapes code (1x1 to 128 channels,
# then three x2 upsampling stages): its CIFAR decoder upsamples C-channel
# features to the full image first, gigabytes at this size
# (docs/benchmarks.md, "Seed objectives").
_base_ = '../faster-rcnn_r50_fpn_man++-k4_1x_coco.py'
optim_wrapper = dict(
    local_cfg=dict(objective=dict(type='infopro', decoder='segmentation')))
