from .cityscapes_like import make_cityscapes_like
from .cls_like import (CLS_CLASSES, make_shapes_classification,
                       make_stl10_like, make_svhn_like, write_stl10_bin,
                       write_svhn_mat)
from .coco_like import DET_CLASSES, make_coco_shapes
from .layouts import DATASET_FILES
from .shapes_seg import PALETTE, SHAPES, make_shapes_segmentation
from .uci_digits import DIGIT_CLASSES, make_uci_digits

__all__ = [
    'CLS_CLASSES', 'DATASET_FILES', 'DET_CLASSES', 'DIGIT_CLASSES', 'PALETTE', 'SHAPES',
    'make_cityscapes_like', 'make_coco_shapes', 'make_shapes_classification',
    'make_shapes_segmentation', 'make_stl10_like', 'make_svhn_like', 'make_uci_digits',
    'write_stl10_bin', 'write_svhn_mat'
]
