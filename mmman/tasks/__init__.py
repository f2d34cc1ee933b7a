"""Task adapters: what MMDet / MMSeg / MMPretrain batches and models tell
local learning (targets, class count, synthetic batches)."""
from .synthetic_batch import synthetic_batch
from .task_targets import TaskTargets, image_level_targets, infer_num_classes

__all__ = [
    'TaskTargets', 'image_level_targets', 'infer_num_classes',
    'synthetic_batch'
]
