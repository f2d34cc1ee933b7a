"""tools/train.py and tools/test.py as a user runs them."""
import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from mmman.apis import DatasetNotFoundError, check_data_roots, enable_amp
from mmman.datasets import make_coco_shapes, make_shapes_segmentation
from helpers import run_python

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG = osp.join(ROOT, 'configs', 'demo',
                  'deeplabv3_r18-d8_man++-k4_300it_shapes-64x64.py')


def _data_root_options(root):
    return [
        f'{loader}.dataset.data_root={root}'
        for loader in ('train_dataloader', 'val_dataloader',
                       'test_dataloader')
    ]


@pytest.fixture(scope='module')
def shapes(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('shapes'))
    return make_shapes_segmentation(root, num_train=16, num_val=8)


def test_train_then_test_from_the_command_line(tmp_path, shapes):
    work = str(tmp_path / 'work')
    out = run_python('tools/train.py', CONFIG, '--work-dir', work, '--cfg-options',
               'train_cfg.max_iters=4', 'train_cfg.val_interval=4',
               'default_hooks.checkpoint.interval=4',
               'default_hooks.logger.interval=2',
               'param_scheduler.0.end=4', 'optim_wrapper.local_cfg.method=man',
               *_data_root_options(shapes))
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-3000:]
    assert 'local3_loss_ce' in log and 'mIoU' in log  # FCN local heads
    assert f'work dir: {work}' in log
    ckpt = osp.join(work, 'iter_4.pth')
    assert osp.isfile(ckpt)
    # method=man: EMA copies but no scaling bias in the saved aux state.
    from mmengine.runner import CheckpointLoader
    import mmman  # noqa: F401
    aux = CheckpointLoader.load_checkpoint(ckpt)['optimizer']['mmman_local']
    assert any('ema.module' in k for k in aux)
    assert not any('scale_bias' in k for k in aux)

    out = run_python('tools/test.py', CONFIG, ckpt, '--work-dir',
               str(tmp_path / 'test'), '--cfg-options',
               *_data_root_options(shapes))
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    assert "'mIoU'" in out.stdout


def test_missing_dataset_gives_one_clear_message(tmp_path):
    out = run_python('tools/train.py', CONFIG, '--work-dir', str(tmp_path),
               '--cfg-options', *_data_root_options('/nonexistent/shapes'))
    assert out.returncode != 0
    assert 'dataset not found at "/nonexistent/shapes"' in out.stderr
    assert 'Traceback' not in out.stderr
    assert not glob.glob(str(tmp_path / '*' / '*.log'))  # nothing written


def test_missing_annotation_files_are_named(tmp_path):
    det = osp.join(ROOT, 'configs', 'demo',
                   'faster-rcnn_r18_fpn_man++-k4_600it_coco-shapes-128.py')
    cfg = Config.fromfile(det)
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].dataset.data_root = str(tmp_path)  # exists, but empty
    cfg.val_evaluator.ann_file = str(tmp_path / 'old' / 'instances.json')
    with pytest.raises(DatasetNotFoundError, match=str(
            tmp_path / 'annotations' / 'instances_train2017.json')):
        check_data_roots(cfg)
    make_coco_shapes(str(tmp_path), num_train=2, num_val=2)
    # The loaders are fine now; CocoMetric still points elsewhere.
    with pytest.raises(DatasetNotFoundError,
                       match='val_evaluator.ann_file=PATH'):
        check_data_roots(cfg)
    check_data_roots(cfg, loaders=('train_dataloader', ))


def test_detection_quick_start_then_test_tool(tmp_path):
    data, work = str(tmp_path / 'coco'), str(tmp_path / 'work')
    out = run_python('tools/demo.py', '--iters', '2', '--data-root', data,
               '--work-dir', work)
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-3000:]
    assert 'val: coco/bbox_mAP:' in out.stdout
    assert 'peak saved activations: E2E' in out.stdout
    assert 'local3_loss_center_heatmap' in log
    det = osp.join(ROOT, 'configs', 'demo',
                   'faster-rcnn_r18_fpn_man++-k4_600it_coco-shapes-128.py')
    ann = osp.join(data, 'annotations', 'instances_val2017.json')
    out = run_python('tools/test.py', det, osp.join(work, 'iter_2.pth'),
               '--work-dir', str(tmp_path / 'test'), '--cfg-options',
               f'test_dataloader.dataset.data_root={data}',
               f'test_evaluator.ann_file={ann}')
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    assert "'coco/bbox_mAP'" in out.stdout


def test_amp_needs_a_gpu_and_keeps_local_learning(monkeypatch):
    cfg = Config.fromfile(CONFIG)
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match='CUDA'):
            enable_amp(cfg)
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    enable_amp(cfg)
    assert cfg.optim_wrapper.type == 'LocalAmpOptimWrapper'
    assert cfg.optim_wrapper.local_cfg.method == 'man++'
    assert cfg.optim_wrapper.loss_scale == 'dynamic'


@pytest.mark.parametrize('method', ['e2e', 'dgl', 'man', 'man++'])
def test_method_configs_inherit_one_field(method):
    name = {'e2e': 'e2e'}.get(method, f'{method}-k4')
    cfg = Config.fromfile(
        osp.join(ROOT, 'configs', 'demo',
                 f'deeplabv3_r18-d8_{name}_300it_shapes-64x64.py'))
    assert cfg.optim_wrapper.local_cfg.method == method
    assert cfg.optim_wrapper.local_cfg.num_blocks == 4
    assert cfg.optim_wrapper.optimizer.lr == 0.05
