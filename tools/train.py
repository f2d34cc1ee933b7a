"""Train an MMDet / MMSeg / MMPretrain config, with mmman registered.

Same interface as MMDet's tools/train.py::

    python tools/train.py CONFIG [--work-dir DIR] [--amp] [--resume [CKPT]]
        [--cfg-options k=v ...] [--launcher none|pytorch|slurm|mpi]
"""
import argparse
import os
import sys

from mmengine.config import Config, DictAction
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

import mmman  # noqa: F401  (registers local learning; safe checkpoint loads)
from mmman.apis import (DatasetNotFoundError, check_data_roots, enable_amp,
                        resolve_work_dir)


def parse_args():
    parser = argparse.ArgumentParser(description='Train a model (mmman)')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--amp', action='store_true', help='mixed precision training (GPU)')
    parser.add_argument(
        '--auto-scale-lr', action='store_true', help='scale lr by batch size')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from CKPT, or from the latest checkpoint in the work '
        'dir when no path is given')
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
    args = parser.parse_args()
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def build_runner(args) -> Runner:
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    resolve_work_dir(cfg, args.config, args.work_dir)
    if args.amp:
        enable_amp(cfg)
    if args.auto_scale_lr:
        if 'auto_scale_lr' not in cfg or 'base_batch_size' not in (
                cfg.auto_scale_lr or {}):
            raise RuntimeError('--auto-scale-lr: the config has no '
                               '`auto_scale_lr.base_batch_size`.')
        cfg.auto_scale_lr.enable = True
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume
    check_data_roots(cfg)
    if 'runner_type' not in cfg:
        return Runner.from_cfg(cfg)
    return RUNNERS.build(cfg)


def main():
    args = parse_args()
    try:
        runner = build_runner(args)
    except DatasetNotFoundError as e:
        sys.exit(f'error: {e}')
    runner.train()
    print(f'work dir: {os.path.abspath(runner.work_dir)}')


if __name__ == '__main__':
    main()
