"""Linear CKA of every local block to the same block of a reference model
(the seeds' Fig. 5: similarity to an end-to-end model).

Extracts every block's output of the reference and of each model on the val
split and reports linear CKA per block. Writes ``cka.{json,md,png}`` (one
line per model over block index) to ``--out-dir``.

    python tools/analysis_tools/cka_similarity.py \\
        --reference work_dirs/e2e/cfg.py work_dirs/e2e/epoch_10.pth \\
        --model DGL work_dirs/dgl/cfg.py work_dirs/dgl/epoch_10.pth \\
        --out-dir docs/analysis/digits_k16
"""
import argparse
import warnings

warnings.filterwarnings(  # emitted by mmengine's import on setuptools 80
    'ignore', message='pkg_resources is deprecated', category=UserWarning)

import mmman  # noqa: F401,E402
from mmman.analysis import (collect_block_features, linear_cka,  # noqa: E402
                            write_block_report)

REFERENCE = 'reference'


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--reference', nargs=2, required=True,
                        metavar=('CONFIG', 'CHECKPOINT'),
                        help='e.g. the end-to-end model')
    parser.add_argument('--model', nargs=3, action='append', required=True,
                        metavar=('NAME', 'CONFIG', 'CHECKPOINT'))
    parser.add_argument('--num-blocks', type=int,
                        help="K (default: each config's local_cfg)")
    parser.add_argument('--pool', type=int,
                        help='pool maps to this size first (default: none)')
    parser.add_argument('--batch-size', type=int, default=128)
    parser.add_argument('--out-dir', required=True)
    return parser.parse_args()


def main():
    args = parse_args()
    feats = collect_block_features([(REFERENCE, *args.reference), *args.model],
                                   ['val'], args.num_blocks, args.pool,
                                   args.batch_size)
    reference = feats.pop(REFERENCE)['val']
    values = {
        name: [
            linear_cka(x, y)
            for x, y in zip(split['val'].features, reference.features)
        ]
        for name, split in feats.items()
    }
    paths = write_block_report(
        args.out_dir, 'cka', 'Linear CKA per block to the reference model',
        'linear CKA', values, reference.units,
        dict(reference=args.reference, models=args.model, pool=args.pool))
    print(open(paths[1]).read())
    print('wrote ' + ', '.join(paths))


if __name__ == '__main__':
    main()
