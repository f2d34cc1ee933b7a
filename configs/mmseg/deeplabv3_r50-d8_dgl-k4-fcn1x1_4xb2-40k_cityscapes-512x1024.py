# The fast local baseline: DGL K=4 (no momentum auxiliary net) with 1x1 FCN
# auxiliary heads. On 2 CPU cores it took 1.036x E2E's step at 0.30x of its
# saved activations (MMSeg's with_cp: 1.19x at 0.46x), at E2E's mIoU on the
# pretrained segmentation benchmark (docs/benchmarks.md, docs/results.md).
_base_ = './deeplabv3_r50-d8_dgl-k4_4xb2-40k_cityscapes-512x1024.py'
optim_wrapper = dict(local_cfg=dict(aux_head=dict(head=dict(kernel_size=1))))
