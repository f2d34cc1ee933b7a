"""Every shipped MMPretrain config trains 2 iterations on tiny generated data
and saves a plain MMPretrain checkpoint, which MMPretrain's own model and
evaluation score to the same accuracy; MMPretrain alone (no mmman) agrees."""
import ast
import copy
import glob
import os.path as osp
import re

import pytest
import torch
from mmengine.config import Config
from mmengine.evaluator import Evaluator
from mmengine.optim import OptimWrapper
from mmengine.registry import MODELS, init_default_scope
from mmengine.runner import Runner

from mmman.datasets import (make_shapes_classification, make_stl10_like,
                            make_svhn_like)
from mmman.engine import LocalOptimWrapper
from helpers import evaluate_with_host_alone, run_python
from helpers import one_thread  # noqa: F401  (autouse)
from model_cfgs import tiny_cls_run

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = sorted(
    c for c in glob.glob(osp.join(ROOT, 'configs', 'mmpretrain', '*', '*.py'))
    if '_base_' not in c)
R101_K4 = osp.join(ROOT, 'configs', 'mmpretrain', 'imagenet',
                   'resnet101_man++-k4_8xb16-coslr-90e_in1k.py')



@pytest.fixture(scope='module')
def cls_data(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('cls'))
    make_shapes_classification(f'{root}/shapes', 10, 4, seed=3)
    make_svhn_like(f'{root}/svhn', 4, 4, seed=3)
    make_stl10_like(f'{root}/stl10', 4, 4, seed=3)
    return root


def _train(config, data_root, work_dir):
    cfg = tiny_cls_run(Config.fromfile(config), data_root, work_dir)
    cfg.experiment_name = osp.splitext(osp.basename(config))[0]
    runner = Runner.from_cfg(cfg)
    runner.train()
    return cfg, runner


NAME = re.compile(r'^(?P<net>[^_]+)_(?P<method>e2e|dgl|man\+\+|man)'
                  r'(?P<ablation>-ema-only|-no-ema)?(-k(?P<k>\d+))?'
                  r'_(?P<rest>.+)$')


def _expected(name):
    """(method, K) a config's name promises."""
    m = NAME.match(name)
    return m['method'], int(m['k']) if m['k'] else None


def _plain_scores(cfg, checkpoint):
    """MMPretrain's model built from the config, the checkpoint loaded with
    strict=True, evaluated by the config's own evaluator: metrics and the
    scores of the first test batch."""
    init_default_scope('mmpretrain')
    model_cfg = copy.deepcopy(cfg.model)
    if cfg.get('data_preprocessor'):  # as the Runner does
        model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)
    model = MODELS.build(model_cfg)
    state = torch.load(checkpoint, map_location='cpu', weights_only=False)
    model.load_state_dict(state['state_dict'], strict=True)
    model.eval()
    loader = Runner.build_dataloader(copy.deepcopy(cfg.test_dataloader))
    evaluator = Evaluator(copy.deepcopy(cfg.test_evaluator))
    first = None
    with torch.no_grad():
        for batch in loader:
            outputs = model.test_step(batch)
            first = first or (batch, outputs)
            evaluator.process(outputs, batch)
    return evaluator.evaluate(len(loader.dataset)), first


@pytest.mark.parametrize('config', CONFIGS, ids=osp.basename)
def test_config_trains_and_mmpretrain_scores_its_checkpoint_alike(
        config, cls_data, tmp_path):
    name = osp.basename(config)
    method, k = _expected(name)
    cfg, runner = _train(config, cls_data, str(tmp_path))
    wrapper = runner.optim_wrapper
    if method == 'e2e':  # MMPretrain's own wrapper, nothing of mmman
        assert type(wrapper) is OptimWrapper
        assert 'local_cfg' not in cfg.optim_wrapper
    else:
        assert isinstance(wrapper, LocalOptimWrapper)
        assert wrapper.plan.num_blocks == k
        assert wrapper.aux.uses_man == (method != 'dgl')
        # MAN++'s learnable balance/scaling: parameters beside the copies
        extra = [
            n for e in wrapper.aux.etas for n, _ in e.named_parameters()
            if not n.startswith(('copy.', 'ema.'))
        ]
        assert bool(extra) == (method == 'man++'), extra
        assert 'train/local1_loss_cls' in runner.message_hub.log_scalars
    ours = runner.test_loop.run()
    ckpt = osp.join(str(tmp_path), 'iter_2.pth')
    theirs, (batch, outputs) = _plain_scores(cfg, ckpt)
    assert theirs == pytest.approx(ours)
    # The checkpoint holds the model's weights, or with an EMAHook (ConvNeXt)
    # their average, which the test loop evaluated.
    ema = [h for h in runner.hooks if type(h).__name__ == 'EMAHook']
    model = ema[0].ema_model.module if ema else runner.model
    model.eval()
    with torch.no_grad():
        again = model.test_step(batch)
    for a, b in zip(outputs, again):
        torch.testing.assert_close(a.pred_score, b.pred_score)


def _without(cfg, *keys):
    flat = cfg.to_dict()
    for key in keys:
        *path, last = key.split('.')
        node = flat
        for part in path:
            node = node[part]
        node.pop(last, None)
    return flat


def _literal(node):
    """A config value: literals and nested ``dict(...)`` calls."""
    if isinstance(node, ast.Call) and node.func.id == 'dict':
        return {k.arg: _literal(k.value) for k in node.keywords}
    return ast.literal_eval(node)


# The seeds' ImageNet splits (their public code): the last unit of each block.
SEED_SPLITS = {
    ('resnet101', 2): ['layer2.0'],
    ('resnet152', 2): ['layer2.5'],
    ('resnext101-32x8d', 2): ['layer2.2'],
    ('resnet101', 4): ['layer2.2', 'layer3.8', 'layer3.16'],
    ('resnext101-32x8d', 4): ['layer2.2', 'layer3.8', 'layer3.16'],
    ('resnet152', 4): ['layer2.6', 'layer3.13', 'layer3.25'],
}


def _fields(config):
    with open(config) as f:
        body = ast.parse(f.read()).body
    return {n.targets[0].id: _literal(n.value) for n in body
            if isinstance(n, ast.Assign)}


# The reproduction study (configs/mmpretrain/digits) runs on DGL's objective.
OBJECTIVES = dict(digits=dict(objective='dgl'))


def test_man_plus_plus_configs_set_only_the_partition():
    for config in CONFIGS:
        folder, name = osp.split(config)
        m = NAME.match(name)
        if m['method'] != 'man++' or m['ablation']:
            continue
        data = osp.basename(folder).replace('imagenet', 'in1k')
        fields = _fields(config)
        assert fields.pop('_base_') == (
            f'../_base_/{m["net"]}_local_{data}.py'), name
        k = int(m['k'])
        split = SEED_SPLITS.get((m['net'], k))
        partition = dict(boundaries=split) if split else dict(num_blocks=k)
        partition.update(OBJECTIVES.get(osp.basename(folder), {}))
        assert fields == dict(optim_wrapper=dict(local_cfg=partition)), name


def test_variants_are_one_field_apart():
    """MAN / DGL and the ablations inherit their MAN++ (MAN) config and
    change only the local_cfg field they name."""
    for config in CONFIGS:
        folder, name = osp.split(config)
        m = NAME.match(name)
        if m['method'] == 'e2e' or (m['method'] == 'man++'
                                    and not m['ablation']):
            continue
        fields = _fields(config)
        parent = 'man' if m['ablation'] else 'man++'
        assert fields.pop('_base_') == (
            f'./{m["net"]}_{parent}-k{m["k"]}_{m["rest"]}'), name
        expected = {
            None: dict(method=m['method']),
            '-ema-only': dict(eta=dict(learnable_copy=False)),
            '-no-ema': dict(eta=dict(learnable_copy=False, momentum=0.0)),
        }[m['ablation']]
        assert fields == dict(optim_wrapper=dict(local_cfg=expected)), name


def test_local_configs_keep_their_e2e_reference():
    """Each family's MAN++ config is its E2E reference with the wrapper
    swapped by the snippet (optimizer kept) and the snippet's hooks."""
    seen = set()
    for config in CONFIGS:
        folder, name = osp.split(config)
        m = NAME.match(name)
        family = (folder, m['net'])
        if m['method'] != 'man++' or m['ablation'] or family in seen:
            continue
        seen.add(family)
        cfg = Config.fromfile(config)
        e2e = Config.fromfile(
            osp.join(folder, f'{m["net"]}_e2e_{m["rest"]}'))
        assert 'custom_imports' not in e2e
        assert cfg.optim_wrapper.type == 'LocalOptimWrapper'
        assert cfg.optim_wrapper.local_cfg.method == 'man++'
        # The E2E config's own hooks (ConvNeXt's EMAHook), then mmman's. (A
        # hook of MMPretrain's config file carries its _scope_, the config's
        # default scope.)
        e2e_hooks = [{k: v for k, v in h.items() if k != '_scope_'}
                     for h in e2e.get('custom_hooks', [])]
        assert cfg.custom_hooks[:len(e2e_hooks)] == e2e_hooks, name
        assert [h.type for h in cfg.custom_hooks[len(e2e_hooks):]] == [
            'LocalLearningHook', 'BlockCollapseHook'], name
        keys = ['optim_wrapper.type', 'optim_wrapper.constructor',
                'optim_wrapper.local_cfg', 'custom_hooks', 'custom_imports',
                'local_optim_wrapper']
        assert _without(cfg, *keys) == _without(e2e, *keys), name
    # 2 CIFAR nets x 3 datasets + 6 ImageNet (ResNet-101/152, ResNeXt-101,
    # VGG-13, Swin-T, ConvNeXt-T) + digits
    assert len(seen) == 13


def test_mmpretrain_alone_evaluates_the_checkpoint_to_the_same_accuracy(
        cls_data, tmp_path, monkeypatch):
    monkeypatch.setenv('OMP_NUM_THREADS', '1')  # for the subprocesses
    work = str(tmp_path / 'train')
    cfg, runner = _train(R101_K4, cls_data, work)
    ours = runner.test_loop.run()
    # MMPretrain's own ResNet-101 config, no mmman imported, its own Runner
    # and checkpoint loading.
    theirs = evaluate_with_host_alone(
        osp.join(work, 'iter_2.pth'), tmp_path, 'mmpretrain',
        'resnet/resnet101_8xb32_in1k.py', 'tiny_cls_run', cls_data)
    assert theirs == pytest.approx(ours)


def test_an_mmpretrain_config_trains_through_tools_train(
        cls_data, tmp_path, monkeypatch):
    monkeypatch.setenv('OMP_NUM_THREADS', '1')  # tiny tensors, busy machine
    config = osp.join(ROOT, 'configs', 'mmpretrain', 'svhn',
                      'resnet32_man++-k8_1xb1024-coslr-400e_svhn.py')
    loaders = ('train_dataloader', 'val_dataloader', 'test_dataloader')
    out = run_python(
        'tools/train.py', config, '--work-dir', str(tmp_path), '--cfg-options',
        'train_dataloader.batch_size=2', 'train_cfg.max_epochs=1',
        'train_cfg.val_interval=1', 'default_hooks.logger.interval=1',
        *[f'{n}.dataset.data_root={cls_data}/svhn' for n in loaders],
        *[f'{n}.num_workers=0' for n in loaders])
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    assert osp.isfile(osp.join(str(tmp_path), 'epoch_1.pth'))
    log = out.stdout + out.stderr
    assert 'local1_loss_cls' in log and 'accuracy/top1' in log


def test_classification_quick_start_then_test_tool(tmp_path, monkeypatch):
    monkeypatch.setenv('OMP_NUM_THREADS', '1')  # tiny tensors, busy machine
    data, work = str(tmp_path / 'shapes'), str(tmp_path / 'work')
    make_shapes_classification(data, 20, 10)  # small: the demo keeps it
    out = run_python('tools/demo.py', '--task', 'cls', '--iters', '2',
                     '--data-root', data, '--work-dir', work)
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-3000:]
    assert 'val: accuracy/top1:' in out.stdout
    assert 'peak saved activations: E2E' in out.stdout
    assert 'local3_loss_cls' in log
    config = osp.join(ROOT, 'configs', 'demo',
                      'resnet20_man++-k4_1xb64-600it_shapes-cls-32x32.py')
    out = run_python('tools/test.py', config, osp.join(work, 'iter_2.pth'),
                     '--work-dir', str(tmp_path / 'test'), '--cfg-options',
                     f'test_dataloader.dataset.data_root={data}')
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    assert "'accuracy/top1'" in out.stdout
