from .checkpoint import (allow_mmengine_checkpoints,
                         mmengine_checkpoints_allowed,
                         restore_checkpoint_loader)
from .dispatch_count import DispatchCounter
from .memory import (PeakMemory, PhaseMeter, SavedTensorsMeter,
                     counted_recomputation, current_rss_bytes,
                     measure_train_step)

__all__ = [
    'allow_mmengine_checkpoints', 'mmengine_checkpoints_allowed',
    'restore_checkpoint_loader', 'DispatchCounter', 'PeakMemory', 'PhaseMeter',
    'SavedTensorsMeter', 'counted_recomputation', 'current_rss_bytes',
    'measure_train_step'
]
