"""Every auxiliary head (Phi and its loss f) a local block can train with:
mmman's own and the seeds', and host heads used as local objectives."""
from .host_cls import ClsAuxHead
from .host_det import DenseDetAuxHead
from .host_seg import DecodeAuxHead, tokens_to_map
from .image_class import ImageClassAuxHead
from .shared_trunk_centernet import SharedTrunkCenterNetHead
from .seed_objectives import (DGLAuxHead, InfoProAuxHead, PredSimAuxHead,
                              similarity_matrix)

__all__ = [
    'ClsAuxHead', 'DenseDetAuxHead', 'DecodeAuxHead', 'tokens_to_map',
    'ImageClassAuxHead', 'DGLAuxHead', 'InfoProAuxHead', 'PredSimAuxHead',
    'similarity_matrix', 'SharedTrunkCenterNetHead'
]
