# The shipped MAN++ K=4 config with its K=4 blocks placed by activation memory
# at the train pipeline's size (the benchmark balances at its --img-scale).
# The shipped detection configs split evenly: docs/results.md, "Pretrained
# setting", for why.
_base_ = '../../mmdet/faster-rcnn_r50_fpn_man++-k4_1x_coco.py'
optim_wrapper = dict(local_cfg=dict(balance=True))
