"""A tiny dataset in Cityscapes' own layout, for tests and smoke runs.

``leftImg8bit/{split}/{city}/{city}_000000_{i}_leftImg8bit.png`` and, beside
them in ``gtFine``, ``_gtFine_labelTrainIds.png`` (what MMSeg trains on, 255 =
ignore), ``_gtFine_labelIds.png`` and ``_gtFine_instanceIds.png`` (what the
official cityscapesscripts evaluation reads). Scenes: sky, buildings, road,
cars and people, with an unlabeled border.
"""
import os
import os.path as osp

import cv2
import numpy as np

# train ids of the classes drawn (Cityscapes' 19-class convention)
ROAD, BUILDING, SKY, PERSON, CAR = 0, 2, 10, 11, 13
_CITIES = {'train': 'aachen', 'val': 'frankfurt'}
_COLOURS = {ROAD: (128, 64, 128), BUILDING: (70, 70, 70), SKY: (180, 130, 70),
            PERSON: (60, 20, 220), CAR: (142, 0, 0)}


def _scene(rng, height, width):
    train_ids = np.full((height, width), ROAD, np.uint8)
    instances = np.zeros((height, width), np.int32)
    horizon = int(height * rng.uniform(0.35, 0.55))
    sky = int(horizon * rng.uniform(0.3, 0.6))
    train_ids[:sky] = SKY
    train_ids[sky:horizon] = BUILDING
    for n in range(int(rng.integers(1, 4))):
        cls = CAR if rng.random() < 0.6 else PERSON
        w = int(width * (0.15 if cls == CAR else 0.05))
        h = int(height * (0.12 if cls == CAR else 0.25))
        x = int(rng.integers(0, width - w))
        y = int(rng.integers(horizon - h // 2, height - h))
        train_ids[y:y + h, x:x + w] = cls
        instances[y:y + h, x:x + w] = n + 1
    train_ids[:, :2] = 255  # unlabeled border
    image = np.zeros((height, width, 3), np.uint8)
    for cls, colour in _COLOURS.items():
        image[train_ids == cls] = colour
    image = (image + rng.normal(0, 12, image.shape)).clip(0, 255)
    return image.astype(np.uint8), train_ids, instances


def make_cityscapes_like(root: str,
                         num_train: int = 4,
                         num_val: int = 2,
                         size=(64, 128),
                         seed: int = 0) -> str:
    """Write the dataset under ``root``; returns ``root``."""
    from cityscapesscripts.helpers.labels import trainId2label
    rng = np.random.default_rng(seed)
    to_label_id = np.zeros(256, np.int32)  # 255 -> 0 (unlabeled)
    for train_id, label in trainId2label.items():
        if 0 <= train_id < 255:
            to_label_id[train_id] = label.id
    for split, count in (('train', num_train), ('val', num_val)):
        city = _CITIES[split]
        img_dir = osp.join(root, 'leftImg8bit', split, city)
        gt_dir = osp.join(root, 'gtFine', split, city)
        os.makedirs(img_dir, exist_ok=True)
        os.makedirs(gt_dir, exist_ok=True)
        for i in range(count):
            stem = f'{city}_000000_{i:06d}'
            image, train_ids, instances = _scene(rng, *size)
            label_ids = to_label_id[train_ids]
            instance_ids = np.where(instances > 0,
                                    label_ids * 1000 + instances, label_ids)
            cv2.imwrite(osp.join(img_dir, f'{stem}_leftImg8bit.png'), image)
            cv2.imwrite(
                osp.join(gt_dir, f'{stem}_gtFine_labelTrainIds.png'),
                train_ids)
            cv2.imwrite(
                osp.join(gt_dir, f'{stem}_gtFine_labelIds.png'),
                label_ids.astype(np.uint8))
            cv2.imwrite(
                osp.join(gt_dir, f'{stem}_gtFine_instanceIds.png'),
                instance_ids.astype(np.uint16))
    return root
