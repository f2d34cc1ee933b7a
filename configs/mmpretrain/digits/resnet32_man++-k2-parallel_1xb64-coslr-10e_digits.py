# Block-parallel MAN++ (issue 23): ResNet-32 on the real UCI digits in 2
# blocks, block 1 on one process and block 2 on another, both training at
# once (`bash tools/dist_train.sh CONFIG 2`). eta'' follows block 2's first
# unit one step late (eta.ema_delay=1, set for block-parallel runs); a
# one-process run of the sequential config with eta=dict(ema_delay=1) trains
# the same weights.
_base_ = '../_base_/resnet32_local_digits.py'
optim_wrapper = dict(
    local_cfg=dict(objective='dgl', num_blocks=2,
                   parallel=dict(type='blocks')))
