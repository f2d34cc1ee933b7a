"""Config handling shared by tools/train.py and tools/test.py."""
import argparse
import os
import os.path as osp
from typing import Optional

from mmengine.config import Config, DictAction


class DatasetNotFoundError(FileNotFoundError):
    """A dataloader points at a data root that does not exist."""


def check_data_roots(cfg: Config, loaders=('train_dataloader',
                                           'val_dataloader',
                                           'test_dataloader')) -> None:
    """Fail with one message naming the missing path, before building.

    Checks each dataloader's ``data_root`` and, when set, its annotation
    file (COCO), then the ``ann_file`` of the matching evaluators
    (``CocoMetric``).
    """
    for name in loaders:
        loader = cfg.get(name)
        if not loader:
            continue
        dataset = loader.get('dataset', {})
        while 'dataset' in dataset:  # RepeatDataset, ClassBalancedDataset
            dataset = dataset['dataset']
        root = dataset.get('data_root')
        if root and not osp.isdir(root):
            raise DatasetNotFoundError(
                f'{name}: dataset not found at "{root}" '
                f'({osp.abspath(root)}). Prepare it as described in '
                'README.md ("Datasets"), or point the config at it with '
                f'--cfg-options {name}.dataset.data_root=PATH.')
        ann_file = dataset.get('ann_file')
        if ann_file:
            path = osp.join(root or '', ann_file)
            if not osp.isfile(path):
                raise DatasetNotFoundError(
                    f'{name}: annotation file not found at "{path}". '
                    'Prepare the dataset as described in README.md '
                    '("Datasets").')
    for name in (n.replace('dataloader', 'evaluator') for n in loaders):
        evaluators = cfg.get(name) or []
        if not isinstance(evaluators, (list, tuple)):
            evaluators = [evaluators]
        for evaluator in evaluators:
            ann_file = evaluator.get('ann_file')
            if ann_file and not osp.isfile(ann_file):
                raise DatasetNotFoundError(
                    f'{name}: annotation file not found at "{ann_file}". '
                    'With a moved data root, point the metric at it too: '
                    f'--cfg-options {name}.ann_file=PATH.')


def enable_amp(cfg: Config) -> None:
    """Turn on mixed precision without dropping local learning.

    MMDet's ``--amp`` replaces the wrapper type by ``AmpOptimWrapper``, which
    would silently train end to end; here the local wrapper becomes its AMP
    twin, whose local backward calls share the model's loss scaler.
    """
    import torch
    if not torch.cuda.is_available():
        raise RuntimeError('--amp needs a CUDA device (MMEngine\'s '
                           'AmpOptimWrapper does not run on CPU).')
    wrapper = cfg.optim_wrapper
    kind = wrapper.get('type', 'OptimWrapper')
    if kind in ('AmpOptimWrapper', 'LocalAmpOptimWrapper'):
        return
    if kind == 'LocalOptimWrapper':
        wrapper.type = 'LocalAmpOptimWrapper'
    elif kind == 'OptimWrapper':
        wrapper.type = 'AmpOptimWrapper'
    else:
        raise ValueError(f'--amp: cannot make {kind} mixed precision.')
    wrapper.setdefault('loss_scale', 'dynamic')


def resolve_work_dir(cfg: Config, config_path: str,
                     work_dir: Optional[str]) -> None:
    """``--work-dir`` > config ``work_dir`` > ``./work_dirs/<config name>``."""
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(config_path))[0])


def add_common_args(parser: argparse.ArgumentParser) -> None:
    """Arguments shared by tools/train.py and tools/test.py."""
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, e.g. '
        'optim_wrapper.local_cfg.method=man')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def load_config(args: argparse.Namespace) -> Config:
    """Config from ``args.config`` with launcher, overrides and work dir."""
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    resolve_work_dir(cfg, args.config, args.work_dir)
    return cfg


def build_runner(cfg: Config):
    """``Runner.from_cfg``, or the config's own ``runner_type``."""
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner
    if 'runner_type' not in cfg:
        return Runner.from_cfg(cfg)
    return RUNNERS.build(cfg)
