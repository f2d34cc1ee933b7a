"""Train an MMDet / MMSeg / MMPretrain config, with mmman registered.

Same interface as MMDet's tools/train.py::

    python tools/train.py CONFIG [--work-dir DIR] [--amp] [--resume [CKPT]]
        [--cfg-options k=v ...] [--launcher none|pytorch|slurm|mpi]
"""
import argparse
import os
import sys
import warnings

warnings.filterwarnings(  # emitted by mmengine's import on setuptools 80
    'ignore', message='pkg_resources is deprecated', category=UserWarning)

import mmman  # noqa: F401  (registers local learning)
from mmman.apis import (DatasetNotFoundError, add_common_args, build_runner,
                        check_data_roots, close_distributed, enable_amp,
                        load_config)
from mmman.utils import allow_mmengine_checkpoints

allow_mmengine_checkpoints()  # this tool's checkpoint loads (torch >= 2.6)


def parse_args():
    parser = argparse.ArgumentParser(description='Train a model (mmman)')
    parser.add_argument('config', help='train config file path')
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
    add_common_args(parser)
    return parser.parse_args()


def prepare_runner(args):
    cfg = load_config(args)
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
    return build_runner(cfg)


def main():
    args = parse_args()
    try:
        runner = prepare_runner(args)
    except DatasetNotFoundError as e:
        sys.exit(f'error: {e}')
    runner.train()
    close_distributed()
    print(f'work dir: {os.path.abspath(runner.work_dir)}')


if __name__ == '__main__':
    main()
