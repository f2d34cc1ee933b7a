from .checkpoint import allow_mmengine_checkpoints
from .memory import (PeakMemory, PhaseMeter, SavedTensorsMeter,
                     current_rss_bytes, measure_train_step)

__all__ = [
    'allow_mmengine_checkpoints', 'PeakMemory', 'PhaseMeter',
    'SavedTensorsMeter', 'current_rss_bytes', 'measure_train_step'
]
