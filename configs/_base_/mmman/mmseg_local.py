# Shared by configs/mmseg/*: local learning with MMSeg's FCNHead as each
# block's objective, and the official Cityscapes evaluation beside mIoU.
# Configs pick the values up with {{_base_.local_optim_wrapper}} and
# {{_base_.cityscapes_evaluator}}; their own `optim_wrapper` keeps the host
# library's optimizer.
custom_imports = dict(imports=['mmman'], allow_failed_imports=False)
local_optim_wrapper = dict(
    type='LocalOptimWrapper',
    constructor='LocalOptimWrapperConstructor',
    local_cfg=dict(
        method='man++',  # e2e|local|man|man++|mlaan|mlaan+man
        # objective=None: aux_head below; or 'dgl' | 'infopro' | 'predsim'
        num_blocks=4,
        momentum=0.995,
        # K blocks placed by measured activation memory at the train
        # pipeline's crop (0.39x instead of 0.49x of E2E's saved activations,
        # docs/benchmarks.md) at no measured mIoU cost (docs/results.md,
        # "Pretrained setting"); balance=None splits evenly
        balance=dict(),
        # local objective: MMSeg's FCNHead on each block's eta features
        aux_head=dict(type='DecodeAuxHead')))
cityscapes_evaluator = [
    dict(type='IoUMetric', iou_metrics=['mIoU']),
    dict(type='CityscapesMetric', output_dir='work_dirs/cityscapes_eval')
]
# Runner hooks of local learning: take the MAN copies when training starts
# (after pretrained weights, load_from, resume) and warn if a local block's
# output collapses to zeros.
custom_hooks = [
    dict(type='LocalLearningHook'),
    dict(type='BlockCollapseHook', interval=50)
]
