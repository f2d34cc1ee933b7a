# Shared by configs/mmdet/*: local learning for MMDet detectors. Configs pick
# it up with `optim_wrapper = {{_base_.local_optim_wrapper}}`, which keeps the
# host config's optimizer and only swaps the wrapper.
custom_imports = dict(imports=['mmman'], allow_failed_imports=False)
local_optim_wrapper = dict(
    type='LocalOptimWrapper',
    constructor='LocalOptimWrapperConstructor',
    # each block's gradients clipped on their own at MMDet's usual 35: with
    # it MAN++ neither lets a one-unit block die nor carries a diverging RoI
    # head into the block before (docs/results.md, "Detection again, 5
    # seeds"). A host that clips itself (DINO: 0.1) sets its own again.
    clip_grad=dict(max_norm=35, norm_type=2),
    local_cfg=dict(
        method='man++',  # e2e|local|man|man++|mlaan|mlaan+man
        # objective=None: aux_head below; or 'dgl' | 'infopro' | 'predsim'
        num_blocks=4,
        momentum=0.995,
        # K blocks placed by measured activation memory at the train
        # pipeline's size (Faster R-CNN R50-FPN: 0.40x instead of 0.50x of
        # E2E's saved activations, docs/benchmarks.md); with the clipping
        # above, at E2E's bbox mAP over 5 pretrained seeds (docs/results.md,
        # "Detection again, 5 seeds"); balance=None splits evenly
        balance=dict(),
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
