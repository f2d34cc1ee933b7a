from .checkpoint import allow_mmengine_checkpoints
from .memory import PeakMemory, SavedTensorsMeter, measure_train_step

__all__ = [
    'allow_mmengine_checkpoints', 'PeakMemory', 'SavedTensorsMeter',
    'measure_train_step'
]
