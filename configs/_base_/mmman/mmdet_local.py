# Shared by configs/mmdet/*: local learning for MMDet detectors. Configs pick
# it up with `optim_wrapper = {{_base_.local_optim_wrapper}}`, which keeps the
# host config's optimizer and only swaps the wrapper.
custom_imports = dict(imports=['mmman'], allow_failed_imports=False)
local_optim_wrapper = dict(
    type='LocalOptimWrapper',
    constructor='LocalOptimWrapperConstructor',
    local_cfg=dict(
        method='man++',  # e2e|local|man|man++|mlaan|mlaan+man
        # objective=None: aux_head below; or 'dgl' | 'infopro' | 'predsim'
        num_blocks=4,
        momentum=0.995,
        # K blocks of equal unit count. balance=True (split by activation
        # memory; 0.44x instead of 0.60x of E2E's saved activations) cost
        # bbox mAP and diverged on 2 of 6 runs in the pretrained detection
        # benchmark (docs/results.md#pretrained-setting), so detection
        # stays even; segmentation balances (mmseg_local.py)
        balance=None,
        # local objective: CenterNet heatmaps of the boxes at each block's
        # stride, at 0.1 of CenterNet's loss scale (measured best,
        # docs/results.md#detection-quality); the image-level alternative
        # is dict(type='ImageClassAuxHead')
        aux_head=dict(type='DenseDetAuxHead', loss_weight=0.1)))
# Runner hooks of local learning: take the MAN copies when training starts
# (after pretrained weights, load_from, resume) and warn if a local block's
# output collapses to zeros.
custom_hooks = [
    dict(type='LocalLearningHook'),
    dict(type='BlockCollapseHook', interval=50)
]
