_base_ = 'mmseg::upernet/upernet_r50_4xb2-40k_cityscapes-512x1024.py'
custom_imports = dict(imports=['mmman'], allow_failed_imports=False)

optim_wrapper = dict(
    type='LocalOptimWrapper',
    constructor='LocalOptimWrapperConstructor',
    local_cfg=dict(
        method='man++',
        num_blocks=4,
        momentum=0.995,
        aux_head=dict(type='DecodeAuxHead')))

# Official Cityscapes evaluation (cityscapesscripts) beside mIoU.
val_evaluator = [
    dict(type='IoUMetric', iou_metrics=['mIoU']),
    dict(type='CityscapesMetric', output_dir='work_dirs/cityscapes_eval')
]
test_evaluator = val_evaluator
