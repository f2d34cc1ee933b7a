"""The method itself, with no task knowledge."""
from .aux_heads import ImageClassAuxHead, ReconstructionAuxHead
from .auxiliary import METHODS, LocalAuxiliary, resolve_eta_cfg
from .man import ChannelScaleBias, LiveCopy, MomentumAuxNet
from .partition import (BlockPlan, PartitionError, Unit, backbone_units,
                        build_block_plan, feature_channels)

__all__ = [
    'ImageClassAuxHead', 'ReconstructionAuxHead', 'METHODS', 'LocalAuxiliary', 'resolve_eta_cfg',
    'ChannelScaleBias', 'LiveCopy', 'MomentumAuxNet', 'BlockPlan',
    'PartitionError', 'Unit', 'backbone_units', 'build_block_plan',
    'feature_channels'
]
