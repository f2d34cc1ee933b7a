"""A generated COCO-format detection / instance-segmentation dataset.

``make_coco_shapes`` writes MMDet's COCO layout (``train2017/``,
``val2017/``, ``annotations/instances_{train,val}2017.json``) with polygon
masks, so MMDet's own COCO configs read it with ``data_root`` changed only.
Each image shows a few objects of five shape classes at scales from
``min_size`` to ``max_size`` pixels, random colours (the class is the shape,
not the colour), on a noisy gradient background with clutter: line segments
and speckles that are no object.
"""
import json
import os
import os.path as osp
from typing import List, Optional

import cv2
import numpy as np

DET_CLASSES = ('square', 'disc', 'triangle', 'cross', 'star')


def _polygon(cls: str, cx: float, cy: float, r: float,
             angle: float) -> np.ndarray:
    """Outline of one object, ``(P, 2)`` float pixels."""
    if cls == 'square':
        t = np.pi / 4 + angle + np.arange(4) * np.pi / 2
        radii = np.full(4, r)
    elif cls == 'disc':
        t = np.linspace(0, 2 * np.pi, 24, endpoint=False)
        radii = np.full(24, r / np.sqrt(2) * 1.15)
    elif cls == 'triangle':
        t = -np.pi / 2 + angle + np.arange(3) * 2 * np.pi / 3
        radii = np.full(3, r)
    elif cls == 'cross':
        a, b = r, r / 3  # arm length and half width
        pts = np.array([(-b, -a), (b, -a), (b, -b), (a, -b), (a, b), (b, b),
                        (b, a), (-b, a), (-b, b), (-a, b), (-a, -b),
                        (-b, -b)])
        c, s = np.cos(angle), np.sin(angle)
        pts = pts @ np.array([[c, s], [-s, c]])
        return pts + (cx, cy)
    else:  # star
        t = -np.pi / 2 + angle + np.arange(10) * np.pi / 5
        radii = np.where(np.arange(10) % 2 == 0, r, r * 0.45)
    return np.stack([cx + radii * np.cos(t), cy + radii * np.sin(t)], 1)


def _background(rng, size: int) -> np.ndarray:
    base = rng.integers(0, 140, 3).astype(np.float32)
    ramp = np.linspace(-1, 1, size, dtype=np.float32)
    direction = rng.normal(size=2)
    grad = ramp[None, :] * direction[0] + ramp[:, None] * direction[1]
    img = base + 25 * grad[..., None] + rng.normal(0, 18, (size, size, 3))
    return img.clip(0, 255).astype(np.uint8)


def _clutter(img: np.ndarray, rng) -> None:
    size = img.shape[0]
    for _ in range(int(rng.integers(2, 7))):
        p1, p2 = (tuple(int(v) for v in rng.integers(0, size, 2))
                  for _ in range(2))
        colour = tuple(int(c) for c in rng.integers(30, 256, 3))
        cv2.line(img, p1, p2, colour, int(rng.integers(1, 3)))
    for _ in range(int(rng.integers(5, 20))):
        x, y = (int(v) for v in rng.integers(0, size, 2))
        colour = tuple(int(c) for c in rng.integers(30, 256, 3))
        cv2.circle(img, (x, y), int(rng.integers(1, 3)), colour, -1)


def _overlaps(box, boxes, margin: float = 2.0) -> bool:
    x0, y0, x1, y1 = box
    return any(x0 < b[2] + margin and b[0] < x1 + margin and
               y0 < b[3] + margin and b[1] < y1 + margin for b in boxes)


def _image(rng, size: int, max_objects: int, min_size: int, max_size: int,
           classes) -> tuple:
    img = _background(rng, size)
    _clutter(img, rng)
    objects: List[dict] = []
    boxes: list = []
    for _ in range(int(rng.integers(1, max_objects + 1))):
        for _try in range(20):  # objects do not overlap: masks stay exact
            label = int(rng.integers(len(classes)))
            r = float(rng.uniform(min_size, max_size)) / 2
            cx, cy = rng.uniform(r + 1, size - r - 1, 2)
            poly = _polygon(classes[label], cx, cy, r,
                            float(rng.uniform(0, np.pi)))
            poly = poly.clip(0, size - 1)
            x0, y0 = poly.min(0)
            x1, y1 = poly.max(0)
            if not _overlaps((x0, y0, x1, y1), boxes):
                break
        else:
            continue
        colour = tuple(int(c) for c in rng.integers(60, 256, 3))
        cv2.fillPoly(img, [np.round(poly).astype(np.int32)], colour)
        boxes.append((x0, y0, x1, y1))
        objects.append(
            dict(
                category_id=label + 1,
                bbox=[float(x0), float(y0), float(x1 - x0), float(y1 - y0)],
                segmentation=[[round(float(v), 2) for v in poly.reshape(-1)]],
                area=float(cv2.contourArea(poly.astype(np.float32))),
                iscrowd=0))
    return img, objects


def make_coco_shapes(root: str,
                     num_train: int = 96,
                     num_val: int = 32,
                     size: int = 128,
                     max_objects: int = 5,
                     min_size: int = 12,
                     max_size: int = 56,
                     classes: Optional[tuple] = None,
                     seed: int = 0) -> str:
    """Write the dataset under ``root``; returns ``root``.

    Idempotent: returns at once when ``root`` already holds a complete
    dataset (a stamp file is written last, so an interrupted run is redone).
    """
    stamp = osp.join(root, '.complete')
    if osp.exists(stamp):
        return root
    classes = tuple(classes or DET_CLASSES)
    unknown = set(classes) - set(DET_CLASSES)
    if unknown:
        raise ValueError(f'make_coco_shapes: unknown classes {unknown}; '
                         f'choose from {DET_CLASSES}.')
    if not 0 < min_size <= max_size < size:
        raise ValueError('make_coco_shapes: need 0 < min_size <= max_size '
                         f'< size, got {min_size}, {max_size}, {size}.')
    rng = np.random.default_rng(seed)
    os.makedirs(osp.join(root, 'annotations'), exist_ok=True)
    categories = [
        dict(id=i + 1, name=name, supercategory='shape')
        for i, name in enumerate(classes)
    ]
    for split, count in (('train2017', num_train), ('val2017', num_val)):
        os.makedirs(osp.join(root, split), exist_ok=True)
        images, annotations = [], []
        for i in range(count):
            img, objects = _image(rng, size, max_objects, min_size, max_size,
                                  classes)
            file_name = f'{i:06d}.png'
            cv2.imwrite(osp.join(root, split, file_name), img)
            images.append(
                dict(id=i + 1, file_name=file_name, width=size, height=size))
            for obj in objects:
                annotations.append(
                    dict(obj, id=len(annotations) + 1, image_id=i + 1))
        with open(osp.join(root, 'annotations', f'instances_{split}.json'),
                  'w') as f:
            json.dump(
                dict(images=images, annotations=annotations,
                     categories=categories), f)
    open(stamp, 'w').close()
    return root
