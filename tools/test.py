"""Evaluate a checkpoint of an MMDet / MMSeg / MMPretrain config.

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR]
        [--cfg-options k=v ...] [--launcher none|pytorch|slurm|mpi]

A checkpoint trained with mmman is a plain checkpoint of the host model: the
host library's own tools/test.py evaluates it as well.
"""
import argparse
import sys
import warnings

warnings.filterwarnings(  # emitted by mmengine's import on setuptools 80
    'ignore', message='pkg_resources is deprecated', category=UserWarning)

import mmman  # noqa: F401  (registers local learning)
from mmman.apis import (DatasetNotFoundError, add_common_args, build_runner,
                        check_data_roots, close_distributed, load_config)
from mmman.utils import allow_mmengine_checkpoints

allow_mmengine_checkpoints()  # this tool's checkpoint loads (torch >= 2.6)


def parse_args():
    parser = argparse.ArgumentParser(description='Test a model (mmman)')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    add_common_args(parser)
    return parser.parse_args()


def main():
    args = parse_args()
    cfg = load_config(args)
    cfg.load_from = args.checkpoint
    try:
        check_data_roots(cfg, loaders=('test_dataloader', ))
    except DatasetNotFoundError as e:
        sys.exit(f'error: {e}')
    runner = build_runner(cfg)
    metrics = runner.test()
    close_distributed()
    print(metrics)


if __name__ == '__main__':
    main()
