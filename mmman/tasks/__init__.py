from .cls_heads import ClsAuxHead
from .det_heads import DenseDetAuxHead
from .seg_heads import DecodeAuxHead, tokens_to_map
from .targets import TaskTargets, image_level_targets, infer_num_classes

__all__ = [
    'ClsAuxHead', 'DenseDetAuxHead', 'DecodeAuxHead', 'tokens_to_map', 'image_level_targets',
    'TaskTargets',
    'infer_num_classes'
]
