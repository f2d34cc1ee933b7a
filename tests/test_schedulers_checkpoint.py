"""Checkpoints of every shipped scheduler, hook and loop load for testing and
for resume through mmman's safe loader (issue 13, defect 0: MultiStepLR's
``Counter`` milestones were refused).

In process, through the code path of tools/test.py and ``--resume``
(MMEngine's ``CheckpointLoader`` scheme mmman's tools register, ``Runner.test``
and ``Runner.resume``): one tiny run per loop type with every scheduler class of
the MMEngine, MMDet, MMSeg and MMPretrain registries, and one per schedule
found in configs/. Then tools/train.py, tools/test.py and ``--resume`` as a
user runs them on a Faster R-CNN with MMDet's 1x schedule.
"""
import ast
import collections
import glob
import importlib
import os.path as osp
import re

import numpy as np
import pytest
import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.evaluator import BaseMetric
from mmengine.hooks import Hook
from mmengine.logging import HistoryBuffer
from mmengine.model import BaseModel
from mmengine.runner import CheckpointLoader, Runner
from torch.utils.data import Dataset

import mmman  # noqa: F401  (defines torchvision ops)
from helpers import ROOT, run_python
from mmman.utils.checkpoint import mmengine_checkpoints_allowed
from mmman.apis import build_runner
from mmman.datasets import make_coco_shapes
from model_cfgs import tiny_coco_run



@pytest.fixture(autouse=True)
def safe_loader():
    """The loader mmman's tools/train.py and tools/test.py install (importing
    mmman installs nothing): without it, a test here passed only after
    another test had left it installed."""
    with mmengine_checkpoints_allowed():
        yield


SCOPES = ('mmengine', 'mmdet', 'mmseg', 'mmpretrain')
# Arguments per scheduler family (class name prefix), for a 2-4 step run.
SCHEDULER_ARGS = {
    'Constant': dict(factor=0.5),
    'CosineAnnealingWeightDecay': dict(T_max=4),
    'CosineAnnealing': dict(T_max=4),
    'CosineRestart': dict(periods=[2, 2], restart_weights=[1, 0.5], eta_min=0),
    'Exponential': dict(gamma=0.9),
    'Linear': dict(start_factor=0.5),
    'MultiStep': dict(milestones=[1, 3]),
    'OneCycle': dict(eta_max=0.2, total_steps=10),
    'PolyLRRatio': dict(eta_min_ratio=0.1),
    'Poly': dict(power=0.9),
    'QuadraticWarmup': dict(),
    'ReduceOnPlateau': dict(monitor='loss', patience=0),
    'Step': dict(step_size=1),
}


class ToyModel(BaseModel):
    """Linear + BN (buffers), MMEngine's model interface."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(2, 2)
        self.bn = nn.BatchNorm1d(2)

    def forward(self, inputs, labels=None, mode='tensor'):
        out = self.bn(self.lin(inputs))
        if mode == 'loss':
            return dict(loss=((out - labels)**2).mean())
        return list(out)


class ToyDataset(Dataset):
    """4 samples; metainfo as host datasets have it (tuples, nested lists,
    numpy)."""
    metainfo = dict(
        classes=('a', 'b'), palette=[[0, 0, 0], [1, 2, 3]],
        weights=np.arange(2.0))

    def __len__(self):
        return 4

    def __getitem__(self, i):
        return dict(inputs=torch.full((2, ), float(i)), labels=torch.ones(2))


class ToyMetric(BaseMetric):
    """Metrics of every kind the message hub stores: numpy and python
    scalars (log scalars, ``best_score``), arrays and tensors (runtime
    info)."""

    def process(self, data_batch, data_samples):
        self.results.append(len(data_samples))

    def compute_metrics(self, results):
        return dict(
            acc=np.float64(0.5), loss=0.25, per_class=np.array([0.1, 0.2]),
            confusion=torch.eye(2))


class Capture(Hook):
    """Records the weights a test starts from (loaded, before EMA hooks swap
    theirs in) and the state ``before_train`` sees (after resuming)."""
    priority = 'VERY_LOW'

    def before_test(self, runner):
        model = runner.model
        self.weights = {k: v.clone() for k, v in model.state_dict().items()}

    def before_train(self, runner):
        self.schedulers = [s.state_dict() for s in runner.param_schedulers]
        self.iter, self.epoch = runner.iter, runner.epoch
        self.hub = runner.message_hub.state_dict()


def _loader(sampler):
    return dict(
        dataset=ToyDataset(),
        sampler=dict(type=sampler, shuffle=False),
        batch_size=2,
        collate_fn=dict(type='default_collate'))


def _runner(work_dir, name, schedulers, by_epoch, length=1,
            optimizer=None, hooks=(), scope=None, **kwargs):
    """A tiny Runner: ``length`` epochs of 2 iterations or 2*``length``
    iterations; validation and a checkpoint every epoch / 2 iterations."""
    if by_epoch:
        loop = dict(type='EpochBasedTrainLoop', max_epochs=length)
        sampler = 'DefaultSampler'
    else:
        loop = dict(type='IterBasedTrainLoop', max_iters=2 * length,
                    val_interval=2)
        sampler = 'InfiniteSampler'
    return Runner(
        model=ToyModel(),
        work_dir=work_dir,
        experiment_name=f'{name}:{work_dir}',  # one MessageHub per run
        default_scope=scope or 'mmengine',
        train_dataloader=_loader(sampler),
        val_dataloader=_loader('DefaultSampler'),
        test_dataloader=_loader('DefaultSampler'),
        val_evaluator=[ToyMetric()],
        test_evaluator=[ToyMetric()],
        train_cfg=loop,
        val_cfg=dict(),
        test_cfg=dict(),
        optim_wrapper=dict(optimizer=optimizer or dict(
            type='SGD', lr=0.1, momentum=0.9, weight_decay=1e-4)),
        param_scheduler=list(schedulers),
        default_hooks=dict(
            checkpoint=dict(
                type='CheckpointHook', by_epoch=by_epoch,
                interval=1 if by_epoch else 2, save_best='acc',
                rule='greater', max_keep_ckpts=2)),
        # LocalLearningHook: this run's checkpoints load with mmman's loader
        custom_hooks=[dict(type='LocalLearningHook'), *hooks],
        log_level='WARNING',
        **kwargs)


def _scheduler_types():
    """The config type name of every registered scheduler class."""
    found = []
    for scope in SCOPES:
        if scope != 'mmengine':
            importlib.import_module(f'{scope}.engine')
        registry = importlib.import_module(f'{scope}.registry')
        found += [
            name if scope == 'mmengine' else f'{scope}.{name}'
            for name in sorted(registry.PARAM_SCHEDULERS.module_dict)
        ]
    return found


def _scheduler_cfg(type_name, by_epoch):
    name = type_name.split('.')[-1]
    family = next((f for f in SCHEDULER_ARGS if name.startswith(f)), None)
    assert family is not None, (
        f'{type_name}: a scheduler class this test does not know; add its '
        'arguments to SCHEDULER_ARGS')
    cfg = dict(SCHEDULER_ARGS[family], type=type_name, by_epoch=by_epoch)
    if family == 'ReduceOnPlateau':
        cfg['by_epoch'] = True  # MMEngine supports nothing else
    if name.endswith('ParamScheduler'):
        cfg['param_name'] = 'lr'
    return cfg


def assert_same(got, want, where='checkpoint'):
    """``got`` holds what ``want`` holds, recursively (tensors, numpy arrays,
    HistoryBuffers and functions included)."""
    assert type(got) is type(want), f'{where}: {type(got)} != {type(want)}'
    if isinstance(want, dict):  # Counter and OrderedDict included
        assert list(got) == list(want), f'{where}: keys differ'
        for key in want:
            assert_same(got[key], want[key], f'{where}[{key!r}]')
    elif isinstance(want, (list, tuple)):
        assert len(got) == len(want), f'{where}: lengths differ'
        for i, (a, b) in enumerate(zip(got, want)):
            assert_same(a, b, f'{where}[{i}]')
    elif isinstance(want, torch.Tensor):
        assert torch.equal(got, want), where
    elif isinstance(want, np.ndarray):
        assert got.dtype == want.dtype and np.array_equal(got, want), where
    elif isinstance(want, HistoryBuffer):
        assert_same(got.data, want.data, f'{where}.data')
        assert got.max_length == want.max_length, where
    elif isinstance(want, float) and np.isnan(want):
        assert np.isnan(got), where
    else:
        assert got == want, f'{where}: {got!r} != {want!r}'


def _load_both_ways(path):
    """mmman's loader vs. a full (trusted, unsafe) unpickle of our file."""
    trusted = torch.load(path, map_location='cpu', weights_only=False)
    loaded = CheckpointLoader.load_checkpoint(path, map_location='cpu')
    assert_same(loaded, trusted, osp.basename(path))
    return loaded


def _test(tmp_path, ckpt, make_runner):
    """Runner.test from ``ckpt``: what tools/test.py does."""
    saved = _load_both_ways(ckpt)
    capture = Capture()
    # Without model EMA: MMPretrain's EMAHook puts the non-EMA weights in
    # the model when it loads a checkpoint (by design).
    make_runner(tmp_path / 'test', 'test', load_from=ckpt, ema=False,
                extra_hooks=[capture]).test()
    assert_same(capture.weights, dict(saved['state_dict']), 'weights')
    return saved


def _resume(tmp_path, ckpt, make_runner, length):
    """Runner.resume from ``ckpt`` (``--resume``), then one more epoch or 2
    iterations (``length`` in all): the state it resumed is the saved one."""
    saved = _load_both_ways(ckpt)
    capture = Capture()
    resumed = make_runner(
        tmp_path / 'resume', 'resume', length=length, resume=True,
        load_from=ckpt, extra_hooks=[capture])
    resumed.train()
    assert_same(capture.schedulers, saved['param_schedulers'],
                'resumed param_schedulers')
    assert (capture.epoch, capture.iter) == (saved['meta']['epoch'],
                                             saved['meta']['iter'])
    assert_same(capture.hub['log_scalars'],
                saved['message_hub']['log_scalars'], 'resumed log scalars')
    return saved


@pytest.mark.parametrize('by_epoch', [True, False], ids=['epoch', 'iter'])
def test_every_scheduler_class_checkpoint_tests_and_resumes(
        tmp_path, by_epoch):
    names = _scheduler_types()
    assert {'MultiStepLR', 'OneCycleLR', 'ReduceOnPlateauLR',
            'mmdet.QuadraticWarmupLR', 'mmseg.PolyLRRatio',
            'mmpretrain.CosineAnnealingWeightDecay'} <= set(names)
    schedulers = [_scheduler_cfg(name, by_epoch) for name in names]
    # Model EMA of MMEngine with MMDet's averaging (epoch) and MMPretrain's
    # EMAHook (iter): both add ``ema_state_dict`` to the checkpoint.
    ema_hook = (dict(type='EMAHook', ema_type='mmdet.ExpMomentumEMA')
                if by_epoch else dict(type='mmpretrain.EMAHook'))

    def make_runner(work_dir, name, length=1, ema=True, extra_hooks=(),
                    **kwargs):
        hooks = [ema_hook] if ema else []
        return _runner(str(work_dir), name, schedulers, by_epoch, length,
                       hooks=[*hooks, *extra_hooks], **kwargs)

    # 2 epochs / 4 iterations; validation after the first epoch / 2 iters.
    make_runner(tmp_path / 'train', 'train', length=2).train()
    work = tmp_path / 'train'
    # The best checkpoint (model, meta, message hub) is written after the
    # first validation, the last one (plus optimizer and schedulers) at the
    # end; both hold the metrics: numpy scalar best_score, arrays and
    # tensors in the runtime info, a stepped ReduceOnPlateau.
    _test(tmp_path, str(work / ('best_acc_epoch_1.pth' if by_epoch else
                                'best_acc_iter_2.pth')), make_runner)
    saved = _resume(tmp_path, str(work / ('epoch_2.pth' if by_epoch else
                                          'iter_4.pth')), make_runner, 3)
    states = saved['param_schedulers']
    assert len(states) == len(names)
    for name, state in zip(names, states):
        if 'MultiStep' in name:
            assert type(state['milestones']) is collections.Counter, name
        if 'OneCycle' in name:
            assert state['anneal_func'].__name__ == '_annealing_cos', name
        if 'ReduceOnPlateau' in name:
            assert state['best'] == 0.25, name  # stepped on the val loss
    assert 'ema_state_dict' in saved
    info = saved['message_hub']['runtime_info']
    assert isinstance(info['best_score'], np.float64)
    assert isinstance(info['val/per_class'], np.ndarray)
    assert isinstance(info['val/confusion'], torch.Tensor)


def _bases(path, text):
    """The ``_base_`` files a config lists (resolved), read without
    running it."""
    for node in ast.parse(text).body:
        if isinstance(node, ast.Assign) and any(
                getattr(t, 'id', None) == '_base_' for t in node.targets):
            bases = ast.literal_eval(node.value)
            bases = [bases] if isinstance(bases, str) else bases
            return [
                b if '::' in b else osp.normpath(
                    osp.join(osp.dirname(path), b)) for b in bases
            ]
    return []


def _schedule_sources(path):
    """The files a config's ``param_scheduler`` (and model EMA) can come
    from: the config itself when it names them, else those of its bases."""
    if '::' in path:  # a host library config
        return frozenset([path])
    with open(path) as f:
        text = f.read()
    if re.search(r'param_scheduler|EMAHook', text):
        return frozenset([path])
    return frozenset().union(*[_schedule_sources(b)
                               for b in _bases(path, text)])


def _shipped_schedules():
    """One config per distinct schedule source under configs/ (globbed:
    configs added later are covered)."""
    paths = sorted(
        p for p in glob.glob(osp.join(ROOT, 'configs', '**', '*.py'),
                             recursive=True) if '/_base_/' not in p)
    chosen = {}
    for path in paths:
        chosen.setdefault(_schedule_sources(path), path)
    return sorted(chosen.values())


SHIPPED = _shipped_schedules()


def test_config_discovery_sees_the_shipped_schedules():
    names = [osp.relpath(p, ROOT) for p in SHIPPED]
    assert any(n.startswith('configs/mmdet/') for n in names), names
    assert any(n.startswith('configs/mmseg/') for n in names), names
    assert len(SHIPPED) >= 5, names


@pytest.mark.parametrize(
    'config', SHIPPED, ids=[osp.relpath(p, ROOT) for p in SHIPPED])
def test_shipped_config_schedule_checkpoint_tests_and_resumes(
        tmp_path, config):
    cfg = Config.fromfile(config)
    schedulers = cfg.get('param_scheduler') or []
    if isinstance(schedulers, dict):
        schedulers = [schedulers]
    # a scheduler that starts later and runs to the end of training (MMPretrain
    # Swin/ConvNeXt: cosine from epoch 20) would end at this tiny run's end,
    # before it begins: it gets an end of its own
    schedulers = [
        dict(s, end=s['begin'] + 1) if s.get('begin', 0) > 0
        and 'end' not in s else s for s in schedulers
    ]
    loop = cfg.train_cfg  # MMEngine: `type`, else `by_epoch` picks it
    by_epoch = loop.get('type', 'EpochBasedTrainLoop' if loop.get(
        'by_epoch') else 'IterBasedTrainLoop') == 'EpochBasedTrainLoop'
    ema_hooks = [h for h in cfg.get('custom_hooks', [])
                 if h['type'].split('.')[-1] == 'EMAHook']
    optimizer = dict(cfg.optim_wrapper.get('optimizer') or {})
    optimizer.setdefault('type', 'SGD')
    optimizer.setdefault('lr', 0.01)

    def make_runner(work_dir, name, length=1, ema=True, extra_hooks=(),
                    **kwargs):
        return _runner(str(work_dir), name, schedulers, by_epoch, length,
                       optimizer=optimizer,
                       hooks=[*(ema_hooks if ema else []), *extra_hooks],
                       scope=cfg.get('default_scope'), **kwargs)

    make_runner(tmp_path / 'train', 'train').train()
    ckpt = str(tmp_path / 'train' /
               ('epoch_1.pth' if by_epoch else 'iter_2.pth'))
    _test(tmp_path, ckpt, make_runner)
    saved = _resume(tmp_path, ckpt, make_runner, 2)
    assert len(saved['param_schedulers']) == len(schedulers)


def _detector_with_mmdet_1x(tmp_path):
    """The demo Faster R-CNN (R18, MAN++ K=4) on 4 generated images with
    MMDet's own 1x schedule (LinearLR warm-up + MultiStepLR [8, 11]) and its
    EpochBasedTrainLoop: one epoch is 2 iterations."""
    data = make_coco_shapes(str(tmp_path / 'coco'), num_train=4, num_val=2,
                            size=64, max_size=32)
    schedule = tmp_path / 'schedule_1x.py'
    schedule.write_text("_base_ = 'mmdet::_base_/schedules/schedule_1x.py'\n")
    mmdet_1x = Config.fromfile(str(schedule))
    cfg = Config.fromfile(
        osp.join(ROOT, 'configs', 'demo',
                 'faster-rcnn_r18_fpn_man++-k4_600it_coco-shapes-128.py'))
    work_dir = str(tmp_path / 'work')
    cfg = tiny_coco_run(cfg, data, work_dir, scale=64)
    cfg.param_scheduler = mmdet_1x.param_scheduler
    cfg.train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=1,
                         val_interval=10)
    cfg.train_dataloader.sampler = dict(type='DefaultSampler', shuffle=True)
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=1)
    cfg.log_processor = dict(by_epoch=True)
    path = str(tmp_path / 'frcnn_1x.py')
    cfg.dump(path)
    return path, work_dir


def test_tools_test_and_resume_a_multisteplr_checkpoint(tmp_path):
    config, work_dir = _detector_with_mmdet_1x(tmp_path)
    # Epoch 1 in this process (as tools/train.py builds it); the two tools
    # that failed on its checkpoint run as a user runs them.
    build_runner(Config.fromfile(config)).train()
    ckpt = osp.join(work_dir, 'epoch_1.pth')
    milestones = torch.load(ckpt, weights_only=False)['param_schedulers'][1][
        'milestones']
    assert milestones == collections.Counter({8: 1, 11: 1})

    out = run_python('tools/test.py', config, ckpt, '--work-dir',
                     str(tmp_path / 'test'))
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    assert "'coco/bbox_mAP'" in out.stdout

    out = run_python('tools/train.py', config, '--resume', '--cfg-options',
                     'train_cfg.max_epochs=2', 'log_level=INFO')
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-3000:]
    assert 'resumed epoch: 1, iter: 2' in log, log[-3000:]
    resumed = CheckpointLoader.load_checkpoint(
        osp.join(work_dir, 'epoch_2.pth'), map_location='cpu')
    multistep = resumed['param_schedulers'][1]
    assert multistep['milestones'] == milestones
    assert multistep['last_step'] == 2  # stepped once per epoch, resumed
    assert 'mmman_local' in resumed['optimizer']
