# ResNet-110 of He et al. 2016 for 32x32 images (3 stages x 18 basic
# blocks): 54 residual units + the stem as a unit of its own (K=55).
_base_ = './cifar-resnet32.py'
model = dict(backbone=dict(depth=110))
