"""Through MMEngine's Runner: pretrained copies, plain checkpoints, resume."""
import copy
import os.path as osp
import textwrap
from unittest import mock

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

from helpers import NUM_CLASSES, build, run_python, seg_model_cfg
from mmman.utils.checkpoint import load_local_checkpoint

NUM_IMAGES = 8


@pytest.fixture(scope='module')
def seg_folder(tmp_path_factory):
    """An MMSeg folder dataset: 64x64 PNGs, label maps with 255 = ignore."""
    root = tmp_path_factory.mktemp('segdata')
    (root / 'img').mkdir()
    (root / 'ann').mkdir()
    rng = np.random.default_rng(0)
    for i in range(NUM_IMAGES):
        img = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
        label = np.zeros((64, 64), np.uint8)
        c = 1 + i % NUM_CLASSES
        label[16:48, 16:48] = c
        img[16:48, 16:48, c - 1] = 255  # a learnable colour cue
        label[:2] = 255
        cv2.imwrite(str(root / 'img' / f'{i}.png'), img)
        cv2.imwrite(str(root / 'ann' / f'{i}.png'), label)
    return str(root)


def runner_cfg(work_dir, data_root, name, max_epochs=2, lr=0.05,
               method='man++', model=None, **extra):
    cfg = dict(
        default_scope='mmseg',
        model=model or seg_model_cfg(),
        work_dir=work_dir,
        experiment_name=name,
        train_dataloader=dict(
            batch_size=4,
            num_workers=0,
            sampler=dict(type='DefaultSampler', shuffle=True),
            dataset=dict(
                type='BaseSegDataset',
                data_root=data_root,
                data_prefix=dict(img_path='img', seg_map_path='ann'),
                img_suffix='.png',
                seg_map_suffix='.png',
                metainfo=dict(classes=('bg', 'a', 'b', 'c')),
                pipeline=[
                    dict(type='LoadImageFromFile'),
                    dict(type='LoadAnnotations'),
                    dict(type='PackSegInputs')
                ])),
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs),
        optim_wrapper=dict(
            type='LocalOptimWrapper',
            constructor='LocalOptimWrapperConstructor',
            optimizer=dict(type='SGD', lr=lr, momentum=0.9,
                           weight_decay=1e-4),
            # the task's dense objective, without dropout: the resume test
            # needs the same masks (MMEngine saves no RNG state)
            local_cfg=dict(
                method=method,
                num_blocks=3,
                aux_head=dict(
                    type='DecodeAuxHead', head=dict(dropout_ratio=0.0)))),
        param_scheduler=[],
        custom_hooks=[dict(type='LocalLearningHook')],
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', interval=1),
            logger=dict(type='LoggerHook', interval=1)),
        randomness=dict(seed=0),
        log_level='WARNING')
    cfg.update(extra)
    return Config(cfg)


def _aux_state(runner):
    return {
        k: v.clone()
        for k, v in runner.optim_wrapper.aux.state_dict().items()
    }


@pytest.mark.parametrize('how', ['init_cfg', 'load_from'])
def test_copies_start_from_the_pretrained_next_layer(tmp_path, seg_folder,
                                                     how):
    pretrained = build('mmseg', seg_model_cfg(), seed=123)
    with torch.no_grad():  # every tensor unlike any initialisation
        for p in pretrained.parameters():
            p.add_(0.5)
    ckpt = str(tmp_path / 'pretrained.pth')
    if how == 'init_cfg':
        torch.save({'state_dict': pretrained.backbone.state_dict()}, ckpt)
        model = seg_model_cfg()
        model['backbone']['init_cfg'] = dict(
            type='Pretrained', checkpoint=ckpt)
        extra = dict(model=model)
    else:
        torch.save({'state_dict': pretrained.state_dict()}, ckpt)
        extra = dict(load_from=ckpt)
    # lr = 0: parameters stay as loaded, so after one step copies must still
    # equal the pretrained next layers (and differ from a random init).
    cfg = runner_cfg(
        str(tmp_path / 'work'), seg_folder, f'pre_{how}', max_epochs=1,
        lr=0.0, method='man', **extra)
    runner = Runner.from_cfg(cfg)
    runner.train()
    wrapper = runner.optim_wrapper
    for k, eta in enumerate(wrapper.aux.etas):
        name = wrapper.plan.next_unit(k).name
        src = {
            n[len(name) + 1:]: p
            for n, p in pretrained.named_parameters()
            if n.startswith(name + '.')
        }
        random_init = build('mmseg', seg_model_cfg(), seed=0)
        for n, p in eta.copy.named_parameters():
            torch.testing.assert_close(p, src[n])
            assert not torch.equal(p,
                                   random_init.get_parameter(f'{name}.{n}'))
        for n, p in eta.ema.module.named_parameters():
            torch.testing.assert_close(p, src[n])


def test_checkpoint_loads_strictly_into_plain_model(tmp_path, seg_folder):
    work = str(tmp_path / 'work')
    runner = Runner.from_cfg(
        runner_cfg(work, seg_folder, 'strict', max_epochs=1))
    runner.train()
    ckpt = osp.join(work, 'epoch_1.pth')
    saved = load_local_checkpoint(ckpt, map_location='cpu')
    assert 'mmman_local' in saved['optimizer']
    plain_keys = set(build('mmseg', seg_model_cfg()).state_dict())
    assert set(saved['state_dict']) == plain_keys
    # A fresh interpreter that never imports mmman.
    script = textwrap.dedent(f"""
        import sys, torch
        from mmengine.registry import init_default_scope, MODELS
        sys.path.insert(0, {osp.dirname(__file__)!r})
        init_default_scope('mmseg')
        import mmseg.models  # noqa
        from model_cfgs import seg_model_cfg
        model = MODELS.build(seg_model_cfg())
        ckpt = torch.load({ckpt!r}, map_location='cpu', weights_only=False)
        model.load_state_dict(ckpt['state_dict'], strict=True)
        assert 'mmman' not in sys.modules
        print('STRICT-OK')
    """)
    out = run_python('-c', script)
    assert 'STRICT-OK' in out.stdout, out.stderr[-3000:]


def test_resume_is_exact(tmp_path, seg_folder):
    # Deterministic settings: no dropout (MMEngine does not checkpoint the
    # RNG state, so dropout masks after a resume would differ).
    model = seg_model_cfg()
    model['decode_head']['dropout_ratio'] = 0.0
    model['auxiliary_head']['dropout_ratio'] = 0.0
    one_go = Runner.from_cfg(
        runner_cfg(str(tmp_path / 'a'), seg_folder, 'a', 4, model=model))
    one_go.train()

    work = str(tmp_path / 'b')
    first = Runner.from_cfg(
        runner_cfg(work, seg_folder, 'b1', 2, model=model))
    first.train()
    second = Runner.from_cfg(
        runner_cfg(work, seg_folder, 'b2', 4, model=model, resume=True))
    second.train()
    assert second.iter == one_go.iter == 4 * NUM_IMAGES // 4

    for (n, p), (_, q) in zip(one_go.model.state_dict().items(),
                              second.model.state_dict().items()):
        assert torch.equal(p, q), n
    a, b = _aux_state(one_go), _aux_state(second)
    assert a.keys() == b.keys()
    assert any('balance' in k for k in a) and any('ema' in k for k in a)
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_resume_restores_rather_than_recopies(tmp_path, seg_folder):
    work = str(tmp_path / 'w')
    first = Runner.from_cfg(runner_cfg(work, seg_folder, 'r1', 1))
    first.train()
    saved = copy.deepcopy(first.optim_wrapper.aux.state_dict())
    # Resume, but train zero further epochs: the aux state must be the
    # checkpoint's (EMA steps included), not a fresh copy of next layers.
    second = Runner.from_cfg(
        runner_cfg(work, seg_folder, 'r2', 1, resume=True))
    second.train()
    restored = second.optim_wrapper.aux.state_dict()
    for k, v in saved.items():
        assert torch.equal(v, restored[k]), k
    steps = [v for k, v in restored.items() if k.endswith('ema.steps')]
    assert steps and all(int(s) > 1 for s in steps)


# ------------------------------------------------ resume with another plan
def _train(tmp_path, seg_folder, name, work, **kwargs):
    runner = Runner.from_cfg(
        runner_cfg(str(tmp_path / work), seg_folder, name, **kwargs))
    runner.train()
    return runner


@pytest.mark.parametrize('local_cfg, expected', [
    # same K, one boundary moved
    (dict(method='man++', boundaries=['layer2.0', 'layer3.0']),
     "blocks: checkpoint ['backbone.layer2.0', 'backbone.layer3.1']"),
    (dict(method='man++', num_blocks=2), 'blocks: checkpoint'),
    (dict(method='dgl', num_blocks=3), 'method: checkpoint man++, config dgl'),
    (dict(method='e2e'), 'this config trains end to end'),
    # a checkpoint of heads without the 1x1 reduction, resumed into heads
    # with one
    (dict(method='man++', num_blocks=3,
          aux_head=dict(type='DecodeAuxHead', head=dict(dropout_ratio=0.0),
                        reduce_channels=4)),
     'reduce_channels=None'),
])
def test_resume_with_another_plan_stops_with_one_message(
        tmp_path, seg_folder, local_cfg, expected):
    # The first run: K=3 splits the 8 units 3|3|2: ends layer2.0, layer3.1.
    first = _train(tmp_path, seg_folder, 'p1', 'w', max_epochs=1)
    assert first.optim_wrapper.signature['blocks'] == [
        'backbone.layer2.0', 'backbone.layer3.1']
    cfg = runner_cfg(str(tmp_path / 'w'), seg_folder, 'p2', 2, resume=True)
    cfg.optim_wrapper.local_cfg = local_cfg
    with pytest.raises(RuntimeError) as err:
        Runner.from_cfg(cfg).train()
    msg = str(err.value)
    assert expected in msg, msg
    assert 'load_from' in msg and 'cannot resume' in msg


def test_resume_of_heads_with_a_3x3_conv_per_branch_names_the_host_head():
    """A checkpoint of the CenterNet auxiliary heads from before they shared
    their 3x3 conv: the message names the head to resume with."""
    from mmman.engine.resume_signature import (PlanMismatchError,
                                               check_resumable)
    from mmman.heads import DenseDetAuxHead
    from mmengine.registry import DefaultScope
    signature = dict(method='man++', blocks=['backbone.layer2.0'])
    with DefaultScope.overwrite_default_scope('mmdet'):  # as in a det run
        old = DenseDetAuxHead(16, 3, head=dict(type='mmdet.CenterNetHead'))
        new = DenseDetAuxHead(16, 3,
                              head=dict(type='SharedTrunkCenterNetHead'))
    saved = {f'aux.0.{k}': v for k, v in old.state_dict().items()}
    shapes = {f'aux.0.{k}': v.shape for k, v in new.state_dict().items()}
    with pytest.raises(PlanMismatchError,
                       match="head.type='mmdet.CenterNetHead'"):
        check_resumable(signature, signature, saved, shapes)
    check_resumable(signature, signature, saved,  # same heads
                    {k: v.shape for k, v in saved.items()})


def test_resume_of_heads_of_another_width_names_the_tensor_and_the_width():
    """Same keys, other shapes (a head's feat_channels changed): one
    message naming a resized tensor, before any state is loaded."""
    from mmman.engine.resume_signature import (PlanMismatchError,
                                               check_resumable)
    from mmman.heads import DenseDetAuxHead
    from mmengine.registry import DefaultScope
    signature = dict(method='man++', blocks=['backbone.layer2.0'])
    with DefaultScope.overwrite_default_scope('mmdet'):
        wide = DenseDetAuxHead(16, 3, head=dict(feat_channels=16))
        narrow = DenseDetAuxHead(16, 3, head=dict(feat_channels=8))
    saved = {f'aux.0.{k}': v for k, v in wide.state_dict().items()}
    shapes = {f'aux.0.{k}': v.shape for k, v in narrow.state_dict().items()}
    assert set(saved) == set(shapes)
    with pytest.raises(PlanMismatchError,
                       match=r'5 tensors of another shape, e\.g\. aux\.0\.'
                       r'head\.\S+ checkpoint \[3, 16, 1, 1\], config '
                       r'\[3, 8, 1, 1\].*feat_channels'):
        check_resumable(signature, signature, saved, shapes)


def test_resume_of_an_e2e_checkpoint_into_man_stops_with_one_message(
        tmp_path, seg_folder):
    _train(tmp_path, seg_folder, 'e1', 'w', max_epochs=1, method='e2e')
    cfg = runner_cfg(str(tmp_path / 'w'), seg_folder, 'e2', 2, resume=True)
    with pytest.raises(RuntimeError, match='trained end to end') as err:
        Runner.from_cfg(cfg).train()
    assert 'load_from' in str(err.value)


def test_load_from_an_e2e_checkpoint_takes_copies_after_loading(
        tmp_path, seg_folder):
    e2e = _train(tmp_path, seg_folder, 'l1', 'e2e', max_epochs=1,
                 method='e2e')
    ckpt = str(tmp_path / 'e2e' / 'epoch_1.pth')
    loaded = {k: v.clone() for k, v in e2e.model.state_dict().items()}
    man = Runner.from_cfg(
        runner_cfg(str(tmp_path / 'man'), seg_folder, 'l2', 1, lr=0.0,
                   method='man', load_from=ckpt))
    man.train()
    wrapper = man.optim_wrapper
    for k, eta in enumerate(wrapper.aux.etas):
        name = wrapper.plan.next_unit(k).name
        for n, p in eta.copy.named_parameters():
            torch.testing.assert_close(p, loaded[f'{name}.{n}'])


# ---------------------------------------------------------- runner hooks
def test_without_the_copy_hook_training_stops_naming_it(tmp_path,
                                                        seg_folder):
    cfg = runner_cfg(str(tmp_path / 'w'), seg_folder, 'nohook', 1)
    cfg.custom_hooks = []
    with pytest.raises(RuntimeError, match="dict\\(type='LocalLearningHook'"):
        Runner.from_cfg(cfg).train()


def test_collapse_hook_warns_once_naming_block_and_iteration(
        tmp_path, seg_folder):
    cfg = runner_cfg(
        str(tmp_path / 'w'), seg_folder, 'collapse', 2,
        custom_hooks=[
            dict(type='LocalLearningHook'),
            dict(type='BlockCollapseHook', interval=1, min_active=0.05)
        ])
    runner = Runner.from_cfg(cfg)
    # Block 2's output dies (all zeros); block 1's does not.
    runner.model.backbone.layer3[1].register_forward_hook(  # ends block 2
        lambda m, a, out: out * 0)
    with mock.patch.object(runner.logger, 'warning') as warn:
        runner.train()
    collapsed = [c[0][0] for c in warn.call_args_list
                 if 'looks collapsed' in c[0][0]]
    assert len(collapsed) == 1, collapsed
    assert 'block 2 ' in collapsed[0] and 'iteration 1:' in collapsed[0]
    hub = runner.message_hub
    assert hub.get_scalar('train/local2_active').current() == 0.0
    assert hub.get_scalar('train/local1_active').current() > 0.05
