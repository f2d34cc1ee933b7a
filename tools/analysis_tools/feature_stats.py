"""Backbone feature statistics of checkpoints on one validation batch.

Prints, per backbone output, the mean |activation| and the share of positive
(alive after ReLU) activations: a collapsed block shows up as near zero.

    python tools/analysis_tools/feature_stats.py CONFIG CKPT [CKPT ...]
"""
import argparse
import warnings

warnings.filterwarnings(  # emitted by mmengine's import on setuptools 80
    'ignore', message='pkg_resources is deprecated', category=UserWarning)

import torch
from mmengine.config import Config
from mmengine.runner import Runner, load_checkpoint

import mmman  # noqa: F401
from mmman.utils import allow_mmengine_checkpoints


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('checkpoints', nargs='+')
    args = parser.parse_args()
    allow_mmengine_checkpoints()
    cfg = Config.fromfile(args.config)
    cfg.work_dir = 'work_dirs/feature_stats'
    cfg.log_level = 'WARNING'
    runner = Runner.from_cfg(cfg)
    model = runner.model.eval()
    batch = next(iter(runner.val_dataloader))
    print('| checkpoint | ' + ' | '.join(
        f'out {i}: mean abs, alive' for i in range(4)) + ' |')
    for ckpt in args.checkpoints:
        load_checkpoint(model, ckpt, map_location='cpu', logger='silent')
        with torch.no_grad():
            inputs = model.data_preprocessor(batch, False)['inputs']
            feats = model.backbone(inputs)
        cells = [
            f'{f.abs().mean():.4f}, {(f > 0).float().mean():.1%}'
            for f in feats
        ]
        print(f'| {ckpt} | ' + ' | '.join(cells) + ' |')


if __name__ == '__main__':
    main()
