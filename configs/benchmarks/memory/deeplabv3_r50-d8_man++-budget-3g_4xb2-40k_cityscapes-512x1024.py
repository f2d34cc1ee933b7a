# The shipped MAN++ config with a memory budget as the one field (see
# faster-rcnn_r50_fpn_man++-budget-2g_1x_coco.py); num_blocks=4 and the
# balanced split are replaced by the budget's plan.
_base_ = '../../mmseg/deeplabv3_r50-d8_man++-k4_4xb2-40k_cityscapes-512x1024.py'
optim_wrapper = dict(local_cfg=dict(memory_budget='3GiB'))
