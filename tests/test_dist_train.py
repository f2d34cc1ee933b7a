"""tools/dist_train.sh and tools/dist_test.sh end to end: 2 processes on CPU
(gloo), MMEngine's pytorch launcher path (issue 13, defect 9)."""
import os
import os.path as osp
import re
import subprocess
import sys

import pytest

from helpers import ROOT, free_port
from mmman.datasets import make_shapes_segmentation

CONFIG = osp.join(ROOT, 'configs', 'demo',
                  'deeplabv3_r18-d8_man++-k4_300it_shapes-64x64.py')


def _bash(script, *args):
    """``bash tools/SCRIPT ARGS`` as a user runs it: with the README's
    .venv (the script's default) when this checkout has one."""
    env = dict(os.environ, PORT=str(free_port()))
    if not osp.exists(osp.join(ROOT, '.venv', 'bin', 'python')):
        env['PYTHON'] = sys.executable
    return subprocess.run(['bash', osp.join('tools', script), *args],
                          cwd=ROOT, env=env, capture_output=True, text=True)


@pytest.fixture(scope='module')
def shapes(tmp_path_factory):
    return make_shapes_segmentation(
        str(tmp_path_factory.mktemp('shapes')), num_train=8, num_val=4,
        size=32)


def _options(data_root):
    """2 iterations of batch 2 per process, 32x32 images; 4 val images in
    batches of 2: one val iteration per process when the data is split."""
    return [
        '--cfg-options', 'train_cfg.max_iters=2', 'train_cfg.val_interval=2',
        'default_hooks.checkpoint.interval=2',
        'default_hooks.logger.interval=1',
        'param_scheduler.0.end=2', 'model.data_preprocessor.size=(32,32)',
        'train_dataloader.batch_size=2', 'val_dataloader.batch_size=2',
        'test_dataloader.batch_size=2',
        *(f'{loader}.dataset.data_root={data_root}'
          for loader in ('train_dataloader', 'val_dataloader',
                         'test_dataloader'))
    ]


def test_dist_train_and_test_run_two_processes_on_cpu(tmp_path, shapes):
    work = str(tmp_path / 'work')
    out = _bash('dist_train.sh', CONFIG, '2', '--work-dir', work,
                *_options(shapes))
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-4000:]
    assert out.stdout.count(f'work dir: {work}') == 2, log[-4000:]  # ranks
    assert 'Distributed training: True' in log
    assert 'GPU number: 2' in log  # MMEngine's name for the world size
    assert 'local3_loss_ce' in log  # local learning on
    assert 'Iter(val) [1/1]' in log  # 4 images split over 2 processes
    ckpt = osp.join(work, 'iter_2.pth')
    assert osp.isfile(ckpt)
    from mmman.utils.checkpoint import load_local_checkpoint
    state = load_local_checkpoint(ckpt, map_location='cpu')
    assert state['meta']['iter'] == 2
    assert 'mmman_local' in state['optimizer']
    assert not any(k.startswith('module.') for k in state['state_dict'])

    out = _bash('dist_test.sh', CONFIG, ckpt, '2', '--work-dir',
                str(tmp_path / 'test'), *_options(shapes))
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-4000:]
    assert 'Iter(test) [1/1]' in log
    # Each rank prints its metrics dict; the two prints may share a line.
    metrics = re.findall(r"\{'aAcc'[^}]*\}", out.stdout)
    assert len(metrics) == 2 and "'mIoU'" in metrics[0], log[-4000:]
