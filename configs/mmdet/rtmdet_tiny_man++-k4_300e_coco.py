# RTMDet-tiny on COCO with MAN++, K=4 over the modules of CSPNeXt's stages
# (downsampling conv, SPP, CSP layer): 9 units split 3|2|2|2. The E2E
# reference is MMDet's own config. RTMDet keeps its EMAHook: it averages the
# plain detector (mmman's hooks live on the model only inside a training
# step), and the checkpoint's EMA weights load into MMDet's RTMDet.
# RTMDet defines custom_hooks itself, so this config cannot take mmman's hooks
# from the shared snippet (two bases may not both set a key): it lists
# RTMDet's hooks (as in rtmdet_s_8xb32-300e_coco.py) and mmman's.
_base_ = 'mmdet::rtmdet/rtmdet_tiny_8xb32-300e_coco.py'
custom_imports = dict(imports=['mmman'], allow_failed_imports=False)
optim_wrapper = dict(
    type='LocalOptimWrapper',
    constructor='LocalOptimWrapperConstructor',
    local_cfg=dict(
        method='man++',
        num_blocks=4,
        momentum=0.995,
        aux_head=dict(type='DenseDetAuxHead', loss_weight=0.1)))
custom_hooks = [
    dict(
        type='EMAHook',
        ema_type='ExpMomentumEMA',
        momentum=0.0002,
        update_buffers=True,
        priority=49),
    dict(
        type='PipelineSwitchHook',
        switch_epoch=280,
        switch_pipeline={{_base_.train_pipeline_stage2}}),
    dict(type='LocalLearningHook'),
    dict(type='BlockCollapseHook', interval=50),
]
