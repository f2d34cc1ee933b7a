"""Backbones partitioned from a traced forward pass (no per-family finder):
Swin, ConvNeXt, MiT (SegFormer), HRNet, PVTv2, MobileNetV2, EfficientNet.

For each: the units found, gradient isolation between blocks against a
plain-autograd reference, eta's copies built from the right unit and called
with that unit's real arguments, a strict load into the plain host model,
and a resumed step equal to the continued one.
"""
import copy

import pytest
import torch

from helpers import (block_params, build, det_batch, local_grads,
                     local_wrapper, reference_grads, seg_batch)
from mmman.local.unit_trace import map_tensors
from model_cfgs import NUM_CLASSES


def _retina(backbone, in_channels):
    from model_cfgs import det_model_cfg
    cfg = det_model_cfg()
    cfg['backbone'] = backbone
    cfg['neck']['in_channels'] = in_channels
    return cfg


def _segformer(backbone, in_channels):
    return dict(
        type='EncoderDecoder',
        data_preprocessor=dict(
            type='SegDataPreProcessor',
            mean=[127.5] * 3,
            std=[127.5] * 3,
            size_divisor=32),
        backbone=backbone,
        decode_head=dict(
            type='SegformerHead',
            in_channels=in_channels,
            in_index=list(range(len(in_channels))),
            channels=16,
            num_classes=NUM_CLASSES + 1,
            norm_cfg=dict(type='BN', requires_grad=True),
            loss_decode=dict(type='CrossEntropyLoss', loss_weight=1.0)),
        train_cfg=dict(),
        test_cfg=dict(mode='whole'))


def _classifier(backbone, channels, neck=dict(type='GlobalAveragePooling')):
    return dict(
        type='ImageClassifier',
        data_preprocessor=dict(
            type='ClsDataPreprocessor', mean=[127.5] * 3, std=[127.5] * 3),
        backbone=backbone,
        neck=neck,
        head=dict(
            type='LinearClsHead',
            num_classes=NUM_CLASSES,
            in_channels=channels,
            loss=dict(type='CrossEntropyLoss')))


def _hrnet_extra():
    def stage(n, block):
        return dict(num_modules=1, num_branches=n, block=block,
                    num_blocks=(1, ) * n, num_channels=(8, 16, 32, 64)[:n])
    return dict(stage1=dict(stage(1, 'BOTTLENECK'), num_blocks=(2, )),
                stage2=stage(2, 'BASIC'), stage3=stage(3, 'BASIC'),
                stage4=stage(4, 'BASIC'))


def cls_batch(n=2, size=32, seed=0):
    from mmpretrain.structures import DataSample
    g = torch.Generator().manual_seed(seed)
    return dict(
        inputs=[
            torch.randint(0, 256, (3, size, size), generator=g,
                          dtype=torch.uint8) for _ in range(n)
        ],
        data_samples=[
            DataSample().set_gt_label(i % NUM_CLASSES) for i in range(n)
        ])


FAMILIES = {
    # MMDet Swin: blocks take (x, hw_shape); the stage's PatchMerging runs
    # after the norm that reads the stage output, so it is no cut point.
    'swin': ('mmdet', _retina(
        dict(type='SwinTransformer', embed_dims=8, depths=(2, 2, 2, 2),
             num_heads=(1, 1, 2, 2), window_size=4, out_indices=(0, 1, 2, 3),
             drop_path_rate=0.0),
        [8, 16, 32, 64]), det_batch, 4, 'backbone.patch_embed'),
    # frozen patch embedding and first stage, and the host's own with_cp
    'swin-frozen-cp': ('mmdet', _retina(
        dict(type='SwinTransformer', embed_dims=8, depths=(2, 2, 2, 2),
             num_heads=(1, 1, 2, 2), window_size=4, out_indices=(0, 1, 2, 3),
             drop_path_rate=0.0, frozen_stages=1, with_cp=True),
        [8, 16, 32, 64]), det_batch, 3, 'backbone.patch_embed'),
    'convnext': ('mmpretrain', _classifier(
        dict(type='ConvNeXt', arch=dict(depths=[1, 1, 2, 1],
                                        channels=[8, 16, 32, 64])), 64,
        neck=None),  # the backbone pools before its final norm
        cls_batch, 4, 'backbone.downsample_layers.0'),
    # MiT: every patch embedding returns (x, hw_shape), blocks take both.
    'mit': ('mmseg', _segformer(
        dict(type='MixVisionTransformer', embed_dims=8,
             num_layers=[1, 1, 1, 1], num_heads=[1, 1, 2, 2]),
        [8, 8, 16, 16]), seg_batch, 4, 'backbone.layers.0.0'),
    # HRNet: the stages exchange branch lists; blocks are whole stages.
    'hrnet': ('mmseg', dict(
        _segformer(dict(type='HRNet', extra=_hrnet_extra()), [8, 16, 32, 64]),
        decode_head=dict(
            type='FCNHead', in_channels=[8, 16, 32, 64], in_index=(0, 1, 2, 3),
            input_transform='resize_concat', channels=16, num_convs=1,
            num_classes=NUM_CLASSES + 1, concat_input=False,
            norm_cfg=dict(type='BN', requires_grad=True),
            loss_decode=dict(type='CrossEntropyLoss'))), seg_batch, 3,
        'backbone.layer1.0'),
    'pvtv2': ('mmdet', _retina(
        dict(type='PyramidVisionTransformerV2', embed_dims=8,
             num_layers=[1, 1, 1, 1], num_heads=[1, 1, 2, 2],
             drop_path_rate=0.0),
        [8, 8, 16, 16]), det_batch, 4, 'backbone.layers.0.0'),
    'mobilenetv2': ('mmpretrain', _classifier(
        dict(type='MobileNetV2', widen_factor=0.25), 1280), cls_batch, 4,
        'backbone.conv1'),
    'efficientnet': ('mmpretrain', _classifier(
        dict(type='EfficientNet', arch='b0'), 1280), cls_batch, 4,
        'backbone.layers.0'),
}


def _model(family):
    scope, cfg, make_batch, k, first = FAMILIES[family]
    model = build(scope, cfg)
    model.train()
    return model, make_batch, k, first


@pytest.mark.parametrize('family', sorted(FAMILIES))
def test_units_and_gradient_isolation(family):
    model, make_batch, k, first = _model(family)
    # aux_head=None: each task's dense objective, as a host config gets it
    wrapper = local_wrapper(model, method='man++', num_blocks=k,
                            aux_head=None)
    plan, aux = wrapper.plan, wrapper.aux
    assert plan.units[0].name == first
    assert plan.num_blocks == k
    got = local_grads(model, wrapper, make_batch())
    model.zero_grad()
    ref = reference_grads(model, aux, plan, make_batch())
    for b in range(plan.num_blocks):
        names = list(block_params(model, plan, b))
        assert any(ref[n].abs().sum() > 0 for n in names), b
        for n in names:
            torch.testing.assert_close(
                got[n], ref[n], rtol=1e-4, atol=1e-6, msg=f'block {b} {n}')


# Boundaries whose next units take more than a tensor (hw_shape, branches).
ETA_CASES = {
    'swin': dict(boundaries=['stages.0.blocks.0', 'stages.1.blocks.0']),
    'mit': dict(boundaries=['layers.0.0', 'layers.2.0']),
    'pvtv2': dict(boundaries=['layers.1.0', 'layers.3.0']),
    'hrnet': dict(num_blocks=3),
}


@pytest.mark.parametrize('family', sorted(ETA_CASES))
def test_eta_copies_the_next_unit_and_gets_its_arguments(family):
    model, make_batch, _, _ = _model(family)
    wrapper = local_wrapper(model, method='man++', **ETA_CASES[family])
    k = wrapper.plan.num_blocks
    plan = wrapper.plan
    real, copies = {}, {}

    def record(store, b):
        def hook(module, args, kwargs):  # containers copied: HRNet fills
            store.setdefault(b, map_tensors((args, kwargs)))  # them in place
        return hook

    for b, block in enumerate(wrapper.aux.blocks):
        nxt = plan.next_unit(b).module
        assert type(block.eta.copy) is type(nxt)
        for (n, p), (_, q) in zip(nxt.state_dict().items(),
                                  block.eta.copy.state_dict().items()):
            assert torch.equal(p, q), n
    data = model.data_preprocessor(make_batch(), True)
    with wrapper.optim_context(model):
        # registered after the wrapper's pre-hooks: they see what the units
        # really run on
        handles = [
            h for b, block in enumerate(wrapper.aux.blocks) for h in (
                plan.next_unit(b).module.register_forward_pre_hook(
                    record(real, b), with_kwargs=True),
                block.eta.copy.register_forward_pre_hook(
                    record(copies, b), with_kwargs=True))
        ]
        model(**data, mode='loss')
    for h in handles:
        h.remove()
    assert sorted(real) == sorted(copies) == list(range(k - 1))
    for b in real:
        (ra, rk), (ca, ck) = real[b], copies[b]
        assert len(ra) == len(ca) and rk.keys() == ck.keys()
        assert plan.next_unit(b).extra_inputs
        for x, y in zip(ra[1:], ca[1:]):  # hw_shape, ... as received
            assert not isinstance(x, torch.Tensor) or torch.equal(x, y)
            assert isinstance(x, torch.Tensor) or x == y
        first_real = ra[0][0] if isinstance(ra[0], list) else ra[0]
        first_copy = ca[0][0] if isinstance(ca[0], list) else ca[0]
        assert not first_real.requires_grad  # the next block: detached
        assert first_copy.requires_grad  # eta: into this block
        torch.testing.assert_close(first_real, first_copy.detach())


@pytest.mark.parametrize('family', sorted(FAMILIES))
def test_checkpoint_is_plain_and_resume_continues(family):
    model, make_batch, k, _ = _model(family)
    scope, cfg = FAMILIES[family][:2]
    wrapper = local_wrapper(model, lr=0.05, method='man++', num_blocks=k)
    model.train_step(make_batch(seed=0), wrapper)
    plain = build(scope, cfg)
    plain.load_state_dict(model.state_dict(), strict=True)

    resumed = copy.deepcopy(model)
    other = local_wrapper(resumed, lr=0.05, method='man++', num_blocks=k,
                          take_copies=False)
    other.load_state_dict(copy.deepcopy(wrapper.state_dict()))
    import mmman
    mmman.start_local_training(other)  # copies restored, not retaken
    for m, w in ((model, wrapper), (resumed, other)):
        torch.manual_seed(1)
        m.train_step(make_batch(seed=1), w)
    for (n, p), (_, q) in zip(model.state_dict().items(),
                              resumed.state_dict().items()):
        torch.testing.assert_close(p, q, msg=n)
    for (n, p), (_, q) in zip(wrapper.aux.state_dict().items(),
                              other.aux.state_dict().items()):
        torch.testing.assert_close(p, q, msg=n)


@pytest.mark.parametrize('family', ['swin', 'convnext'])
def test_output_norms_of_finished_blocks_learn_from_the_model_loss(family):
    """Swin's and ConvNeXt's per-stage output norms only feed the neck: the
    model's loss trains them on their input detached (neither loss would
    reach them otherwise)."""
    model, make_batch, k, _ = _model(family)
    wrapper = local_wrapper(model, method='man++', num_blocks=k)
    plan = wrapper.plan
    layers = [(i, plan.output_layer(i)) for i in plan.finished_outputs()]
    layers = [(i, m) for i, m in layers if m is not None]
    if family == 'convnext':  # MMPretrain's pools before its only norm
        assert not layers
        return
    assert layers
    got = local_grads(model, wrapper, make_batch())
    names = {id(p): n for n, p in model.named_parameters()}
    for i, layer in layers:
        if i == 0:
            continue  # the test FPN starts at level 1: unused, as in E2E
        for p in layer.parameters():
            assert got[names[id(p)]].abs().sum() > 0, names[id(p)]
