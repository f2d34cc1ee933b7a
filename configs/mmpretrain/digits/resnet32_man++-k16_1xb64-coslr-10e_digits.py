# ResNet-32 on the real UCI digits with MAN++, 16 blocks (stem + 15 residual
# units, as the paper counts them) on DGL's objective (the MLP-SR aux net):
# the study's local rows are this config with one field changed
# (tools/analysis_tools/reproduction_study.sh).
_base_ = '../_base_/resnet32_local_digits.py'
optim_wrapper = dict(local_cfg=dict(objective='dgl', num_blocks=16))
