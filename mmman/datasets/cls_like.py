"""Small generated classification data, for the demo and the tests.

``make_shapes_classification`` writes an MMPretrain ``CustomDataset`` folder
(``{train,val}/<class>/*.png``): one shape per image (the COCO generator's
five classes), random size, position, rotation and colour, on a noisy
gradient background with clutter, so the class is the shape.

``make_svhn_like`` and ``make_stl10_like`` write files in the official
formats of SVHN (``{train,test}_32x32.mat``) and STL-10
(``{train,test}_{X,y}.bin``), which :class:`mmman.datasets.SVHN` and
:class:`mmman.datasets.STL10` read.
"""
import os
import os.path as osp
from typing import Sequence

import cv2
import numpy as np

from .coco_like import DET_CLASSES, _background, _clutter, _polygon

CLS_CLASSES = DET_CLASSES


def _shape_image(rng, size: int, label: int) -> np.ndarray:
    img = _background(rng, size)
    _clutter(img, rng)
    r = float(rng.uniform(0.22, 0.42)) * size
    cx, cy = rng.uniform(r, size - r, 2)
    poly = _polygon(CLS_CLASSES[label], cx, cy, r, float(rng.uniform(0, 6.3)))
    colour = tuple(int(c) for c in rng.integers(60, 256, 3))
    cv2.fillPoly(img, [np.round(poly).astype(np.int32)], colour)
    return img


def make_shapes_classification(root: str,
                               num_train: int = 500,
                               num_val: int = 200,
                               size: int = 32,
                               seed: int = 0) -> str:
    """Write ``{train,val}/<class>/NNNN.png`` under ``root``; returns it.

    Classes are balanced. Idempotent: a complete ``root`` (stamp file, written
    last) is left as it is.
    """
    stamp = osp.join(root, '.complete')
    if osp.exists(stamp):
        return root
    rng = np.random.default_rng(seed)
    for split, count in (('train', num_train), ('val', num_val)):
        for cls in CLS_CLASSES:
            os.makedirs(osp.join(root, split, cls), exist_ok=True)
        for i in range(count):
            label = i % len(CLS_CLASSES)
            cv2.imwrite(
                osp.join(root, split, CLS_CLASSES[label], f'{i:05d}.png'),
                _shape_image(rng, size, label))
    open(stamp, 'w').close()
    return root


def _digit_image(rng, digit: int, size: int = 32) -> np.ndarray:
    """RGB house-number-like crop: the digit centred, neighbours clipped."""
    img = _background(rng, size)
    colour = tuple(int(c) for c in rng.integers(120, 256, 3))
    scale = float(rng.uniform(0.8, 1.1))
    for offset, d in ((-20, int(rng.integers(10))), (0, digit),
                      (20, int(rng.integers(10)))):
        cv2.putText(img, str(d), (9 + offset, 25), cv2.FONT_HERSHEY_SIMPLEX,
                    scale, colour, 2)
    return img


def write_svhn_mat(path: str, images: np.ndarray,
                   labels: Sequence[int]) -> None:
    """SVHN format 2: ``X`` (32, 32, 3, N) uint8 RGB, ``y`` (N, 1) with
    labels 1..10 (10 is the digit 0)."""
    from scipy.io import savemat
    y = np.asarray(labels, np.uint8).reshape(-1, 1)
    y = np.where(y == 0, 10, y).astype(np.uint8)
    savemat(path, dict(X=np.ascontiguousarray(images.transpose(1, 2, 3, 0)),
                       y=y))


def write_stl10_bin(prefix: str, images: np.ndarray,
                    labels: Sequence[int]) -> None:
    """STL-10 binary: ``{prefix}_X.bin`` uint8, each image channel by
    channel, pixels column-major; ``{prefix}_y.bin`` uint8 labels 1..10."""
    # (N, H, W, C) -> (N, C, W, H): C-order bytes of that are column-major.
    images.transpose(0, 3, 2, 1).astype(np.uint8).tofile(f'{prefix}_X.bin')
    (np.asarray(labels, np.uint8) + 1).tofile(f'{prefix}_y.bin')


def make_svhn_like(root: str, num_train: int = 20, num_test: int = 10,
                   seed: int = 0) -> str:
    """Write ``train_32x32.mat`` and ``test_32x32.mat`` (digits 0-9)."""
    rng = np.random.default_rng(seed)
    os.makedirs(root, exist_ok=True)
    for split, count in (('train', num_train), ('test', num_test)):
        labels = [i % 10 for i in range(count)]
        images = np.stack([_digit_image(rng, d) for d in labels])
        write_svhn_mat(osp.join(root, f'{split}_32x32.mat'), images, labels)
    return root


def make_stl10_like(root: str, num_train: int = 20, num_test: int = 10,
                    size: int = 96, seed: int = 0) -> str:
    """Write ``{train,test}_{X,y}.bin`` (10 classes: shapes, class % 5, and
    a class-dependent background brightness)."""
    rng = np.random.default_rng(seed)
    os.makedirs(root, exist_ok=True)
    for split, count in (('train', num_train), ('test', num_test)):
        labels = [i % 10 for i in range(count)]
        images = np.stack([
            (_shape_image(rng, size, label % 5) // (1 + label // 5))
            for label in labels
        ])
        write_stl10_bin(osp.join(root, split), images, labels)
    return root
