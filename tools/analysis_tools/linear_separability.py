"""Linear separability of every local block (the seeds' Fig. 4).

Freezes each trained model, extracts every block's output on the train and
val split (train read without augmentation; maps average-pooled to
``--pool`` x ``--pool``), fits a linear classifier per block on train and
reports its val accuracy. Writes ``linear_separability.{json,md,png}``
(one line per model over block index) to ``--out-dir``.

    python tools/analysis_tools/linear_separability.py \\
        --model E2E work_dirs/e2e/cfg.py work_dirs/e2e/epoch_10.pth \\
        --model DGL work_dirs/dgl/cfg.py work_dirs/dgl/epoch_10.pth \\
        --out-dir docs/analysis/digits_k16
"""
import argparse
import warnings

warnings.filterwarnings(  # emitted by mmengine's import on setuptools 80
    'ignore', message='pkg_resources is deprecated', category=UserWarning)

from mmengine.utils import ProgressBar  # noqa: E402

import mmman  # noqa: F401,E402
from mmman.analysis import (collect_block_features,  # noqa: E402
                            linear_probe_accuracy, write_block_report)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--model', nargs=3, action='append', required=True,
                        metavar=('NAME', 'CONFIG', 'CHECKPOINT'))
    parser.add_argument('--num-blocks', type=int,
                        help="K (default: the config's local_cfg)")
    parser.add_argument('--pool', type=int, default=4,
                        help='pool maps to this size before the probe')
    parser.add_argument('--weight-decay', type=float, default=1e-3)
    parser.add_argument('--batch-size', type=int, default=128)
    parser.add_argument('--out-dir', required=True)
    return parser.parse_args()


def main():
    args = parse_args()
    feats = collect_block_features(args.model, ['train', 'val'],
                                   args.num_blocks, args.pool,
                                   args.batch_size)
    values, units = {}, None
    bar = ProgressBar(sum(len(f['val'].units) for f in feats.values()))
    for name, split in feats.items():
        train, val = split['train'], split['val']
        if train.labels is None:
            raise SystemExit(f'{name}: the dataset has no image labels; '
                             'linear separability needs classification data')
        units = units or val.units
        values[name] = []
        for tx, vx in zip(train.features, val.features):
            values[name].append(
                linear_probe_accuracy(tx, train.labels, vx, val.labels,
                                      weight_decay=args.weight_decay))
            bar.update()
    print()
    paths = write_block_report(
        args.out_dir, 'linear_separability',
        'Linear separability: val accuracy (%) of a linear probe per block',
        'linear probe val accuracy (%)', values, units,
        dict(models=args.model, pool=args.pool,
             weight_decay=args.weight_decay))
    print(open(paths[1]).read())
    print('wrote ' + ', '.join(paths))


if __name__ == '__main__':
    main()
