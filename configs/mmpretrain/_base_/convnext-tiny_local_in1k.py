# ConvNeXt-T on ImageNet with local learning: the E2E reference plus mmman's
# MMPretrain settings (wrapper swapped, optimizer and paramwise_cfg kept). Not
# runnable alone: the configs inheriting it choose the partition (num_blocks /
# boundaries).
# The E2E config defines custom_hooks (MMPretrain's EMAHook), so this file
# cannot take mmman's from the shared snippet too (two bases may not both set
# a key): it lists the E2E config's hooks, then mmman's. The EMA averages the
# plain classifier; the checkpoint's EMA weights load into MMPretrain's model.
_base_ = '../imagenet/convnext-tiny_e2e_32xb128_in1k.py'
custom_imports = dict(imports=['mmman'], allow_failed_imports=False)
optim_wrapper = dict(
    type='LocalOptimWrapper',
    constructor='LocalOptimWrapperConstructor',
    local_cfg=dict(
        method='man++',
        momentum=0.995,
        aux_head=dict(type='ImageClassAuxHead')))
custom_hooks = [
    dict(type='EMAHook', momentum=1e-4, priority='ABOVE_NORMAL'),
    dict(type='LocalLearningHook'),
    dict(type='BlockCollapseHook', interval=50),
]
