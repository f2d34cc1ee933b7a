from .cityscapes_like import make_cityscapes_like
from .synthetic import PALETTE, SHAPES, make_shapes_segmentation

__all__ = [
    'PALETTE', 'SHAPES', 'make_cityscapes_like', 'make_shapes_segmentation'
]
