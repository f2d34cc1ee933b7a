"""The UCI handwritten digits as an MMPretrain folder dataset, offline.

scikit-learn ships the 1,797 real 8x8 scans of the UCI "Optical Recognition
of Handwritten Digits" test set (43 writers, 10 classes, grey levels 0-16)
inside its wheel, so no download is needed. ``make_uci_digits`` upsamples
each scan to ``size`` x ``size`` (bicubic), writes it as an RGB PNG and
splits the images into train/val with a fixed stratified split.
"""
import os
import os.path as osp

import cv2
import numpy as np

DIGIT_CLASSES = tuple(str(i) for i in range(10))


def make_uci_digits(root: str,
                    val_fraction: float = 0.2,
                    size: int = 32,
                    seed: int = 0) -> str:
    """Write ``{train,val}/<digit>/NNNN.png`` under ``root``; returns it.

    The split is stratified per class (``val_fraction`` of each class, drawn
    with ``seed``), so train/val are 1,438/359 images by default. Idempotent:
    a complete ``root`` (stamp file, written last) is left as it is.
    """
    from sklearn.datasets import load_digits  # noqa: needs scikit-learn

    stamp = osp.join(root, '.complete')
    if osp.exists(stamp):
        return root
    if not 0 < val_fraction < 1:
        raise ValueError(f'val_fraction must be in (0, 1), got {val_fraction}')
    digits = load_digits()
    rng = np.random.default_rng(seed)
    split = np.empty(len(digits.target), dtype=object)
    for label in range(len(DIGIT_CLASSES)):
        index = rng.permutation(np.flatnonzero(digits.target == label))
        num_val = int(round(val_fraction * len(index)))
        split[index[:num_val]] = 'val'
        split[index[num_val:]] = 'train'
    for name in ('train', 'val'):
        for cls in DIGIT_CLASSES:
            os.makedirs(osp.join(root, name, cls), exist_ok=True)
    for i, (scan, label) in enumerate(zip(digits.images, digits.target)):
        grey = np.round(scan * (255.0 / 16.0)).astype(np.uint8)
        grey = cv2.resize(grey, (size, size), interpolation=cv2.INTER_CUBIC)
        cv2.imwrite(
            osp.join(root, split[i], DIGIT_CLASSES[label], f'{i:04d}.png'),
            cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR))
    open(stamp, 'w').close()
    return root
