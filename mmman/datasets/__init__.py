from .cityscapes_like import make_cityscapes_like
from .coco_like import DET_CLASSES, make_coco_shapes
from .synthetic import PALETTE, SHAPES, make_shapes_segmentation

__all__ = [
    'DET_CLASSES', 'PALETTE', 'SHAPES', 'make_cityscapes_like',
    'make_coco_shapes', 'make_shapes_segmentation'
]
