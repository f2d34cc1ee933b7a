"""Every shipped COCO config trains under local learning on generated
COCO-format data, evaluates with CocoMetric, and saves a plain MMDet
checkpoint; MMDet alone evaluates that checkpoint to the same predictions."""
import glob
import os.path as osp
import pickle

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import MODELS, init_default_scope
from mmengine.runner import Runner

from mmman.datasets import make_coco_shapes
from helpers import evaluate_with_host_alone, run_python
from model_cfgs import tiny_coco_run

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = sorted(glob.glob(osp.join(ROOT, 'configs', 'mmdet', '*.py')))
EXAMPLE = osp.join(ROOT, 'configs', 'mmdet', 'examples',
                   'fcos_r50_fpn_man++-k4_1x_coco.py')


@pytest.fixture(scope='module')
def coco(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('coco'))
    return make_coco_shapes(root, num_train=8, num_val=4, seed=3)


class GradientRecord:
    """Which trainable parameters received a gradient, and a nonzero one."""

    def __init__(self, model):
        self.got, self.nonzero = set(), set()
        self.params = {
            n: p
            for n, p in model.named_parameters() if p.requires_grad
        }
        for name, p in self.params.items():
            p.register_post_accumulate_grad_hook(self._hook(name))

    def _hook(self, name):

        def hook(p):
            self.got.add(name)
            if p.grad.abs().sum() > 0:
                self.nonzero.add(name)

        return hook

    def missing(self, prefix=''):
        return sorted(n for n in self.params
                      if n.startswith(prefix) and n not in self.got)


def _train(config, data_root, work_dir, **kwargs):
    cfg = tiny_coco_run(Config.fromfile(config), data_root, work_dir,
                        **kwargs)
    cfg.experiment_name = osp.splitext(osp.basename(config))[0]
    cfg.randomness = dict(seed=0)  # drop-path masks: the same every run
    backbone = cfg.model.backbone
    if backbone.type == 'ResNet' and not backbone.get('norm_cfg', {}).get(
            'requires_grad', True):
        # Random weights and frozen BN (DINO): a zero-initialised last BN of
        # each bottleneck would stay zero and shut every residual branch,
        # E2E too; pretrained weights have none.
        backbone.zero_init_residual = False
    runner = Runner.from_cfg(cfg)
    record = GradientRecord(runner.model)
    runner.train()
    return cfg, runner, record


@pytest.mark.parametrize('config', CONFIGS + [EXAMPLE], ids=osp.basename)
def test_config_trains_evaluates_and_saves_a_plain_checkpoint(
        config, coco, tmp_path):
    name = osp.basename(config)
    cfg, runner, record = _train(config, coco, str(tmp_path))
    wrapper = runner.optim_wrapper
    assert wrapper.local_enabled
    assert wrapper.plan.num_blocks == (2 if '-k2_' in name else 4)
    assert wrapper.aux.uses_man == ('dgl' not in name)
    # No parameter of any block or head is cut off from its loss.
    # (Swin's and ConvNeXt's per-stage output norms included: the model's
    # loss trains them, tests/test_zoo_backbones.py)
    missing = record.missing()
    assert missing == []
    backbone = [n for n in record.params if n.startswith('backbone.')]
    dead = [n for n in backbone
            if n not in record.nonzero and n not in missing]
    assert not dead, dead[:5]
    # Frozen stem/layer1 of MMDet's ResNet configs: no block, no aux net.
    if cfg.model.backbone.get('frozen_stages', -1) == 1:
        names = [u.name for u in wrapper.plan.units]
        assert not any(n.startswith('layer1') for n in names), names
        assert not runner.model.backbone.layer1[0].conv1.weight.requires_grad
        assert not runner.model.backbone.bn1.training  # norm_eval
    # The dense local objective is MMDet's CenterNetHead.
    assert 'train/local1_loss_center_heatmap' in runner.message_hub.log_scalars
    metrics = runner.val_loop.run()
    assert 'coco/bbox_mAP' in metrics
    if 'mask_head' in cfg.model.get('roi_head', {}):
        assert 'coco/segm_mAP' in metrics
        assert record.missing('roi_head.mask_head') == []
    # The checkpoint is the plain MMDet model: no aux state, strict load.
    ckpt = torch.load(
        osp.join(str(tmp_path), 'iter_2.pth'), weights_only=False)
    assert 'mmman_local' in ckpt['optimizer']
    init_default_scope('mmdet')
    plain = MODELS.build(cfg.model)
    plain.load_state_dict(ckpt['state_dict'], strict=True)
    if 'rtmdet' in name:
        _check_ema_is_the_plain_model(runner, ckpt, plain)


def _check_ema_is_the_plain_model(runner, ckpt, plain):
    """MMEngine's EMAHook deep-copies the model: it must not drag the local
    wrapper (hooks, aux nets, optimizer) along."""
    ema_hook = next(h for h in runner.hooks if type(h).__name__ == 'EMAHook')
    ema = ema_hook.ema_model.module
    assert type(ema) is type(runner.model)
    assert not [m for m in ema.modules()
                if m._forward_hooks or m._forward_pre_hooks]

    def nbytes(module):
        return sum(t.numel() * t.element_size()
                   for t in module.state_dict().values())

    assert ema.state_dict().keys() == runner.model.state_dict().keys()
    assert nbytes(ema) == nbytes(runner.model)
    assert int(ema_hook.ema_model.steps) == 2  # updated every iteration
    # MMDet's RTMDet loads the EMA weights saved by the hook.
    ema_state = {k[len('module.'):]: v
                 for k, v in ckpt['ema_state_dict'].items()
                 if k.startswith('module.')}
    plain.load_state_dict(ema_state, strict=True)


def test_new_detector_inherits_ours_and_changes_only_the_head():
    # The README's worked example is this file, word for word.
    with open(EXAMPLE) as f:
        example = f.read()
    with open(osp.join(ROOT, 'README.md')) as f:
        assert example.strip() in f.read()
    cfg = Config.fromfile(EXAMPLE)
    ours = Config.fromfile(
        osp.join(ROOT, 'configs', 'mmdet',
                 'retinanet_r50_fpn_man++-k4_1x_coco.py'))
    assert cfg.model.bbox_head.type == 'FCOSHead'
    assert cfg.optim_wrapper == ours.optim_wrapper
    assert cfg.model.backbone == ours.model.backbone
    assert cfg.train_dataloader == ours.train_dataloader


def _dump(runner_cfg, path):
    runner_cfg.test_evaluator = [
        runner_cfg.test_evaluator,
        dict(type='DumpDetResults', out_file_path=path)
    ]


def test_mmdet_alone_evaluates_the_checkpoint_the_same(coco, tmp_path):
    config = osp.join(ROOT, 'configs', 'mmdet',
                      'mask-rcnn_r50_fpn_man++-k4_1x_coco.py')
    work = str(tmp_path / 'train')
    _train(config, coco, work)
    # tiny_coco_run keeps every detection: the comparison is not vacuous.
    ours_pkl = str(tmp_path / 'ours.pkl')
    test_cfg = tiny_coco_run(Config.fromfile(config), coco,
                             str(tmp_path / 'ours'))
    test_cfg.load_from = osp.join(work, 'iter_2.pth')
    _dump(test_cfg, ours_pkl)
    ours = Runner.from_cfg(test_cfg).test()

    # MMDet's own config, no mmman imported, MMDet's own checkpoint loading.
    theirs_pkl = str(tmp_path / 'theirs.pkl')
    theirs = evaluate_with_host_alone(
        osp.join(work, 'iter_2.pth'), tmp_path, 'mmdet',
        'mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py', 'tiny_coco_run', coco,
        extra=f"cfg.test_evaluator = [cfg.test_evaluator, dict("
        f"type='DumpDetResults', out_file_path={theirs_pkl!r})]")
    assert set(theirs) == set(ours) and 'coco/segm_mAP' in ours
    for key in ours:
        assert theirs[key] == pytest.approx(ours[key]), key
    with open(ours_pkl, 'rb') as f:
        a = pickle.load(f)
    with open(theirs_pkl, 'rb') as f:
        b = pickle.load(f)
    assert sum(len(r['pred_instances']['bboxes']) for r in a) > 0
    for ra, rb in zip(a, b):
        pa, pb = ra['pred_instances'], rb['pred_instances']
        torch.testing.assert_close(pa['bboxes'], pb['bboxes'])
        torch.testing.assert_close(pa['scores'], pb['scores'])


def test_missing_coco_names_the_path(tmp_path):
    config = osp.join(ROOT, 'configs', 'mmdet',
                      'faster-rcnn_r50_fpn_man++-k4_1x_coco.py')
    out = run_python('tools/train.py', config, '--work-dir', str(tmp_path))
    assert out.returncode != 0 and 'Traceback' not in out.stderr
    assert 'dataset not found at "data/coco/"' in out.stderr
    assert not glob.glob(osp.join(str(tmp_path), '*', '*.log'))
