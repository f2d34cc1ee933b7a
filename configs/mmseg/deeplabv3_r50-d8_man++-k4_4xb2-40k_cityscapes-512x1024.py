# DeepLabV3 R50-D8 on Cityscapes, trained with MAN++ over K=4 local blocks.
# The E2E reference is MMSeg's own config (the _base_ below).
# ImageNet weights: `pretrained` (open-mmlab://resnet50_v1c) downloads; offline
# point it at a local file: --cfg-options model.pretrained=/path/r50_v1c.pth
_base_ = 'mmseg::deeplabv3/deeplabv3_r50-d8_4xb2-40k_cityscapes-512x1024.py'
custom_imports = dict(imports=['mmman'], allow_failed_imports=False)

optim_wrapper = dict(
    type='LocalOptimWrapper',
    constructor='LocalOptimWrapperConstructor',
    local_cfg=dict(
        method='man++',  # 'e2e' | 'dgl' | 'man' | 'man++'
        num_blocks=4,
        momentum=0.995,
        # local objective: MMSeg's FCNHead on each block's eta features
        aux_head=dict(type='DecodeAuxHead')))

# Official Cityscapes evaluation (cityscapesscripts) beside mIoU.
val_evaluator = [
    dict(type='IoUMetric', iou_metrics=['mIoU']),
    dict(type='CityscapesMetric', output_dir='work_dirs/cityscapes_eval')
]
test_evaluator = val_evaluator
