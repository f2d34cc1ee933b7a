"""Small generated datasets a model can learn on CPU in minutes.

``make_shapes_segmentation`` writes an MMSeg folder dataset: noisy, textured
backgrounds with squares, discs and triangles of random size, position and
colour; the label map gives the shape class (0 = background), so the model
must learn shapes rather than colours.
"""
import os
import os.path as osp

import cv2
import numpy as np

SHAPES = ('background', 'square', 'disc', 'triangle')
PALETTE = [[0, 0, 0], [220, 20, 60], [0, 128, 255], [255, 200, 0]]


def _draw(canvas, label, cls, rng, size):
    r = int(rng.integers(size // 10, size // 4))
    cx, cy = (int(v) for v in rng.integers(r, size - r, 2))
    colour = tuple(int(c) for c in rng.integers(40, 256, 3))
    if cls == 1:
        pts = [(cx - r, cy - r), (cx + r, cy + r)]
        cv2.rectangle(canvas, *pts, colour, -1)
        cv2.rectangle(label, *pts, cls, -1)
    elif cls == 2:
        cv2.circle(canvas, (cx, cy), r, colour, -1)
        cv2.circle(label, (cx, cy), r, cls, -1)
    else:
        tri = np.array([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)])
        cv2.fillPoly(canvas, [tri], colour)
        cv2.fillPoly(label, [tri], cls)


def make_shapes_segmentation(root: str,
                             num_train: int = 96,
                             num_val: int = 32,
                             size: int = 64,
                             max_shapes: int = 3,
                             seed: int = 0) -> str:
    """Write ``img_dir/{train,val}`` and ``ann_dir/{train,val}`` PNGs.

    Idempotent: returns at once when ``root`` already holds the dataset.
    """
    stamp = osp.join(root, '.complete')
    if osp.exists(stamp):
        return root
    rng = np.random.default_rng(seed)
    for split, count in (('train', num_train), ('val', num_val)):
        img_dir = osp.join(root, 'img_dir', split)
        ann_dir = osp.join(root, 'ann_dir', split)
        os.makedirs(img_dir, exist_ok=True)
        os.makedirs(ann_dir, exist_ok=True)
        for i in range(count):
            base = rng.integers(0, 120, 3)
            canvas = (base + rng.normal(0, 25, (size, size, 3))).clip(
                0, 255).astype(np.uint8)
            label = np.zeros((size, size), np.uint8)
            for _ in range(int(rng.integers(1, max_shapes + 1))):
                _draw(canvas, label, int(rng.integers(1, 4)), rng, size)
            cv2.imwrite(osp.join(img_dir, f'{i:04d}.png'), canvas)
            cv2.imwrite(osp.join(ann_dir, f'{i:04d}.png'), label)
    open(stamp, 'w').close()
    return root
