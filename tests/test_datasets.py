"""The generated COCO-format dataset is valid COCO that MMDet reads."""
import json
import os.path as osp

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from mmman.datasets import DET_CLASSES, make_coco_shapes


def test_coco_shapes_boxes_masks_and_layout(tmp_path):
    root = make_coco_shapes(str(tmp_path), num_train=6, num_val=3, seed=1)
    for split, count in (('train2017', 6), ('val2017', 3)):
        coco = COCO(osp.join(root, 'annotations', f'instances_{split}.json'))
        assert len(coco.getImgIds()) == count
        assert [c['name'] for c in coco.loadCats(coco.getCatIds())] == list(
            DET_CLASSES)
        for ann in coco.loadAnns(coco.getAnnIds()):
            img = coco.loadImgs(ann['image_id'])[0]
            assert osp.isfile(osp.join(root, split, img['file_name']))
            x, y, w, h = ann['bbox']
            assert 0 <= x and 0 <= y and x + w <= 128 and y + h <= 128
            # The box is the polygon's extent; the mask lies inside it.
            poly = np.array(ann['segmentation'][0]).reshape(-1, 2)
            np.testing.assert_allclose(
                [*poly.min(0), *poly.max(0)], [x, y, x + w, y + h], atol=0.01)
            ys, xs = np.nonzero(coco.annToMask(ann))
            assert len(xs) and xs.min() >= x - 1 and xs.max() <= x + w + 1
            assert ys.min() >= y - 1 and ys.max() <= y + h + 1
            rle = mask_utils.frPyObjects(ann['segmentation'], 128, 128)
            assert mask_utils.area(mask_utils.merge(rle)) == pytest.approx(
                ann['area'], rel=0.2, abs=8)


def read(root):
    with open(osp.join(root, 'annotations', 'instances_train2017.json')) as f:
        return json.load(f)


def test_coco_shapes_is_seeded_and_idempotent(tmp_path):
    a = make_coco_shapes(str(tmp_path / 'a'), 4, 2, seed=5)
    b = make_coco_shapes(str(tmp_path / 'b'), 4, 2, seed=5)
    assert read(a) == read(b)
    make_coco_shapes(a, 40, 20, seed=6)  # complete: left as it is
    assert read(a) == read(b)


def test_coco_shapes_rejects_bad_sizes(tmp_path):
    with pytest.raises(ValueError, match='max_size'):
        make_coco_shapes(str(tmp_path), max_size=200)
    assert not osp.exists(osp.join(str(tmp_path), '.complete'))
