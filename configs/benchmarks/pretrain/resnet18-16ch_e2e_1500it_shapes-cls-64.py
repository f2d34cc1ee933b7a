# Pretraining of the detection benchmark's backbone (MMDet's ResNet-18, 16
# base channels): the segmentation one's recipe with MMDet's backbone class,
# so the weights load into Faster R-CNN by name. lr 0.05: at 0.1 this plain
# (7x7 stem) ResNet diverged to NaN by iteration 800, the ResNetV1c did not.
_base_ = './resnetv1c18-16ch_e2e_1500it_shapes-cls-64.py'
model = dict(backbone=dict(type='mmdet.ResNet'))
optim_wrapper = dict(optimizer=dict(lr=0.05))
