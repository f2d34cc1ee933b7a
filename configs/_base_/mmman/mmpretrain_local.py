# Shared by configs/mmpretrain/*: local learning for MMPretrain classifiers.
# Configs pick it up with `optim_wrapper = {{_base_.local_optim_wrapper}}`,
# which keeps the E2E config's optimizer and only swaps the wrapper; the
# configs beside them choose the partition (num_blocks or boundaries).
custom_imports = dict(imports=['mmman'], allow_failed_imports=False)
local_optim_wrapper = dict(
    type='LocalOptimWrapper',
    constructor='LocalOptimWrapperConstructor',
    local_cfg=dict(
        method='man++',  # e2e|local|man|man++|mlaan|mlaan+man
        # objective=None: aux_head below; or 'dgl' | 'infopro' | 'predsim'
        momentum=0.995,
        # local objective: the DGL-style classifier (conv-BN-ReLU, global
        # pool, two FC) with cross-entropy on gt_label; MMPretrain's own
        # head instead: dict(type='ClsAuxHead') (GlobalAveragePooling +
        # LinearClsHead)
        aux_head=dict(type='ImageClassAuxHead')))
# Runner hooks of local learning: take the MAN copies when training starts
# (after pretrained weights, load_from, resume) and warn if a local block's
# output collapses to zeros.
custom_hooks = [
    dict(type='LocalLearningHook'),
    dict(type='BlockCollapseHook', interval=50)
]
