"""The method itself, with no task knowledge."""
from .aux_heads import ImageClassAuxHead
from .auxiliary import LocalAuxiliary
from .methods import METHODS, resolve_eta_cfg, resolve_mlaan_cfg
from .man import BranchBalance, ChannelScaleBias, LiveCopy, MomentumAuxNet
from .mlaan import LeapModule, LinearProbe
from .objectives import (INFOPRO_PRESETS, OBJECTIVES, DGLAuxHead,
                         InfoProAuxHead, PredSimAuxHead, infopro_weights,
                         objective_heads, similarity_matrix)
from .planning import plan_blocks
from .partition import (BlockPlan, PartitionError, Unit, backbone_units,
                        build_block_plan, feature_channels)
from .targets import LocalTargets

__all__ = [
    'ImageClassAuxHead', 'METHODS', 'LocalAuxiliary',
    'resolve_eta_cfg', 'resolve_mlaan_cfg', 'BranchBalance',
    'ChannelScaleBias', 'LiveCopy', 'MomentumAuxNet', 'LeapModule',
    'LinearProbe', 'INFOPRO_PRESETS', 'OBJECTIVES', 'DGLAuxHead',
    'InfoProAuxHead', 'PredSimAuxHead', 'infopro_weights', 'objective_heads',
    'similarity_matrix', 'BlockPlan', 'PartitionError', 'Unit',
    'backbone_units', 'build_block_plan', 'feature_channels', 'LocalTargets',
    'plan_blocks'
]
