from .synthetic import PALETTE, SHAPES, make_shapes_segmentation

__all__ = ['PALETTE', 'SHAPES', 'make_shapes_segmentation']
