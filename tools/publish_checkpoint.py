"""Strip a training checkpoint down to the plain model for release.

Keeps ``state_dict`` (the host model's weights: mmman's auxiliary networks
are never in it) and plain ``meta`` entries; drops optimizer, auxiliary state
and message hub. The result loads with ``torch.load(weights_only=True)``, so
MMDet's / MMSeg's own tools/test.py read it on torch >= 2.6 without mmman.

    python tools/publish_checkpoint.py work_dirs/x/iter_40000.pth model.pth
"""
import argparse

import torch
from mmengine.runner import CheckpointLoader

import mmman  # noqa: F401  (registers local learning)
from mmman.utils import allow_mmengine_checkpoints

PLAIN = (str, int, float, bool, type(None))

allow_mmengine_checkpoints()  # this tool's checkpoint loads (torch >= 2.6)


def publish(src: str, dst: str) -> None:
    ckpt = CheckpointLoader.load_checkpoint(src, map_location='cpu')
    meta = {
        k: v
        for k, v in ckpt.get('meta', {}).items()
        if isinstance(v, PLAIN) or (isinstance(v, (list, tuple)) and all(
            isinstance(i, PLAIN) for i in v))
    }
    torch.save({'state_dict': ckpt['state_dict'], 'meta': meta}, dst)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('src', help='checkpoint saved during training')
    parser.add_argument('dst', help='output file')
    args = parser.parse_args()
    publish(args.src, args.dst)
    print(f'published {args.dst}')


if __name__ == '__main__':
    main()
