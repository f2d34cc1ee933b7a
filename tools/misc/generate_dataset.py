"""Generate a small dataset: `shapes` (MMSeg), `coco`, `cityscapes`,
`shapes-cls` (an MMPretrain CustomDataset folder), `svhn` / `stl10` (files
in the official formats), or `digits` (the real UCI handwritten digits that
scikit-learn ships, as a CustomDataset folder; --seed picks the split).

    python tools/misc/generate_dataset.py shapes data/shapes_bench \\
        --num-train 400 --num-val 100 --max-shapes 4 --seed 1
    python tools/misc/generate_dataset.py coco data/coco_shapes_bench \\
        --num-train 600 --num-val 150 --max-shapes 6 --seed 1
    python tools/misc/generate_dataset.py cityscapes data/cityscapes_tiny
    python tools/misc/generate_dataset.py shapes-cls data/shapes_cls \\
        --num-train 2000 --num-val 500
    python tools/misc/generate_dataset.py digits data/uci_digits
"""
import argparse

from mmman.datasets import (make_cityscapes_like, make_coco_shapes,
                            make_shapes_classification,
                            make_shapes_segmentation, make_stl10_like,
                            make_svhn_like, make_uci_digits)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        'kind',
        choices=['shapes', 'coco', 'cityscapes', 'shapes-cls', 'svhn',
                 'stl10', 'digits'])
    parser.add_argument('root')
    parser.add_argument('--num-train', type=int, default=96)
    parser.add_argument('--num-val', type=int, default=32)
    parser.add_argument('--max-shapes', type=int, default=3)
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()
    if args.kind == 'shapes':
        make_shapes_segmentation(args.root, args.num_train, args.num_val,
                                 max_shapes=args.max_shapes, seed=args.seed)
    elif args.kind == 'coco':
        make_coco_shapes(args.root, args.num_train, args.num_val,
                         max_objects=args.max_shapes, seed=args.seed)
    elif args.kind == 'cityscapes':
        make_cityscapes_like(args.root, args.num_train, args.num_val,
                             seed=args.seed)
    elif args.kind == 'shapes-cls':
        make_shapes_classification(args.root, args.num_train, args.num_val,
                                   seed=args.seed)
    elif args.kind == 'digits':
        make_uci_digits(args.root, seed=args.seed)
    else:  # the 'val' count is the test split of the official formats
        make = make_svhn_like if args.kind == 'svhn' else make_stl10_like
        make(args.root, args.num_train, args.num_val, seed=args.seed)
    print(f'wrote {args.root}')


if __name__ == '__main__':
    main()
