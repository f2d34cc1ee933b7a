"""Evaluate a checkpoint of an MMDet / MMSeg / MMPretrain config.

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR]
        [--cfg-options k=v ...] [--launcher none|pytorch|slurm|mpi]

A checkpoint trained with mmman is a plain checkpoint of the host model: the
host library's own tools/test.py evaluates it as well.
"""
import argparse
import os
import sys

from mmengine.config import Config, DictAction
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

import mmman  # noqa: F401
from mmman.apis import DatasetNotFoundError, check_data_roots, resolve_work_dir


def parse_args():
    parser = argparse.ArgumentParser(description='Test a model (mmman)')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the dir to save logs/metrics')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config settings')
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


def main():
    args = parse_args()
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    resolve_work_dir(cfg, args.config, args.work_dir)
    cfg.load_from = args.checkpoint
    try:
        check_data_roots(cfg, loaders=('test_dataloader', ))
    except DatasetNotFoundError as e:
        sys.exit(f'error: {e}')
    runner = (Runner.from_cfg(cfg)
              if 'runner_type' not in cfg else RUNNERS.build(cfg))
    metrics = runner.test()
    print(metrics)


if __name__ == '__main__':
    main()
