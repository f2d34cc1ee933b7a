"""Every shipped Cityscapes config trains on generated Cityscapes-format data,
evaluates with IoUMetric + CityscapesMetric, and its checkpoint is a plain
MMSeg checkpoint."""
import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import MODELS, init_default_scope
from mmengine.runner import Runner

from mmman.datasets import make_cityscapes_like
from helpers import evaluate_with_host_alone, run_python
from model_cfgs import tiny_cityscapes_run

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = sorted(glob.glob(osp.join(ROOT, 'configs', 'mmseg', '*.py')))


@pytest.fixture(scope='module')
def cityscapes(tmp_path_factory):
    return make_cityscapes_like(str(tmp_path_factory.mktemp('cityscapes')))


def _train(config, data_root, work_dir, name):
    cfg = tiny_cityscapes_run(Config.fromfile(config), data_root, work_dir)
    cfg.experiment_name = name
    runner = Runner.from_cfg(cfg)
    runner.train()
    return cfg, runner


@pytest.mark.parametrize('config', CONFIGS, ids=osp.basename)
def test_config_trains_evaluates_and_saves_a_plain_checkpoint(
        config, cityscapes, tmp_path):
    name = osp.splitext(osp.basename(config))[0]
    cfg, runner = _train(config, cityscapes, str(tmp_path), name)
    wrapper = runner.optim_wrapper
    assert wrapper.local_enabled
    expected_k = 2 if '-k2_' in name else 4
    assert wrapper.plan.num_blocks == expected_k
    assert wrapper.aux.uses_man == ('dgl' not in name)
    metrics = runner.val_loop.run()
    assert 'mIoU' in metrics
    if 'CityscapesMetric' in str(cfg.val_evaluator):
        assert 'averageScoreCategories' in metrics
    # Local heads are MMSeg FCN heads; MMSeg's own auxiliary head (where the
    # model has one: SegFormer and Mask2Former have none) still runs.
    scalars = runner.message_hub.log_scalars
    assert 'train/local1_loss_ce' in scalars
    if cfg.model.get('auxiliary_head'):
        assert 'train/aux.loss_ce' in scalars
    if 'd8' in name and wrapper.aux.uses_man:  # copies keep the dilation
        for k, eta in enumerate(wrapper.aux.etas):
            src = wrapper.plan.next_unit(k).module
            assert eta.copy.conv2.dilation == src.conv2.dilation
    # The checkpoint is the plain MMSeg model.
    ckpt = torch.load(
        osp.join(str(tmp_path), 'iter_2.pth'), weights_only=False)
    init_default_scope('mmseg')
    plain = MODELS.build(cfg.model)
    plain.load_state_dict(ckpt['state_dict'], strict=True)


def test_mmseg_alone_evaluates_the_checkpoint_to_the_same_miou(
        cityscapes, tmp_path):
    config = osp.join(
        ROOT, 'configs', 'mmseg',
        'deeplabv3_r50-d8_man++-k4_4xb2-40k_cityscapes-512x1024.py')
    work = str(tmp_path / 'train')
    cfg, runner = _train(config, cityscapes, work, 'mmseg_alone')
    ours = runner.test_loop.run()
    # MMSeg's own config, no mmman imported, MMSeg's own checkpoint loading.
    theirs = evaluate_with_host_alone(
        osp.join(work, 'iter_2.pth'), tmp_path, 'mmseg',
        'deeplabv3/deeplabv3_r50-d8_4xb2-40k_cityscapes-512x1024.py',
        'tiny_cityscapes_run', cityscapes)
    assert theirs['mIoU'] == pytest.approx(ours['mIoU'])


def test_missing_cityscapes_names_the_path(tmp_path):
    config = osp.join(
        ROOT, 'configs', 'mmseg',
        'deeplabv3_r50-d8_man++-k4_4xb2-40k_cityscapes-512x1024.py')
    out = run_python('tools/train.py', config, '--work-dir', str(tmp_path))
    assert out.returncode != 0 and 'Traceback' not in out.stderr
    assert 'dataset not found at "data/cityscapes/"' in out.stderr
