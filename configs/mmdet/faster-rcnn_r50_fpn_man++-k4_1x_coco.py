# Faster R-CNN R50-FPN on COCO trained with MAN++ over K=4 local blocks.
# The E2E reference is MMDet's own config (the _base_ below); frozen_stages=1
# and norm_eval come from it: the frozen stem/layer1 get no block.
# ImageNet weights: the base's init_cfg downloads torchvision://resnet50;
# offline: --cfg-options model.backbone.init_cfg.checkpoint=/path/r50.pth
_base_ = 'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py'
custom_imports = dict(imports=['mmman'], allow_failed_imports=False)

optim_wrapper = dict(
    type='LocalOptimWrapper',
    constructor='LocalOptimWrapperConstructor',
    local_cfg=dict(
        method='man++',  # 'e2e' | 'dgl' | 'man' | 'man++'
        num_blocks=4,
        momentum=0.995,
        # local objective: CenterNet heatmaps of the boxes at each block
        aux_head=dict(type='DenseDetAuxHead')))
