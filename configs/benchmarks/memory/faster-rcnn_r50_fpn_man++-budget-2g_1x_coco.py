# The shipped MAN++ config with a memory budget as the one field: mmman
# measures the model at the training scale and picks the fewest blocks and
# the least checkpointing predicted to fit 2 GiB (saved activations +
# parameters, gradients and optimizer state); num_blocks=4 is replaced.
_base_ = '../../mmdet/faster-rcnn_r50_fpn_man++-k4_1x_coco.py'
optim_wrapper = dict(local_cfg=dict(memory_budget='2GiB'))
