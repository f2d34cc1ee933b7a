"""The method itself, with no task knowledge: block plans, method presets,
eta (MAN / MAN++), MLAAN and the per-block auxiliary parts."""
from .auxiliary import LocalAuxiliary
from .local_targets import LocalTargets
from .man import BranchBalance, ChannelScaleBias, LiveCopy, MomentumAuxNet
from .methods import METHODS, resolve_eta_cfg, resolve_mlaan_cfg
from .mlaan import LeapModule, LinearProbe
from .objectives import (INFOPRO_PRESETS, OBJECTIVES, infopro_weights,
                         objective_heads)
from .partition import (BlockPlan, PartitionError, Unit, backbone_units,
                        build_block_plan, feature_channels)
from .planning import plan_blocks

__all__ = [
    'METHODS', 'LocalAuxiliary', 'resolve_eta_cfg', 'resolve_mlaan_cfg',
    'BranchBalance', 'ChannelScaleBias', 'LiveCopy', 'MomentumAuxNet',
    'LeapModule', 'LinearProbe', 'INFOPRO_PRESETS', 'OBJECTIVES',
    'infopro_weights', 'objective_heads', 'BlockPlan', 'PartitionError',
    'Unit', 'backbone_units', 'build_block_plan', 'feature_channels',
    'LocalTargets', 'plan_blocks'
]
