"""Task adapters: what MMDet / MMSeg / MMPretrain batches and models tell
local learning (targets, class count, synthetic batches)."""
from .synthetic_batch import synthetic_batch
from .task_kind import DEFAULT_AUX_HEADS, default_aux_head, model_task
from .task_targets import TaskTargets, image_level_targets, infer_num_classes

__all__ = [
    'TaskTargets', 'image_level_targets', 'infer_num_classes',
    'synthetic_batch', 'DEFAULT_AUX_HEADS', 'default_aux_head', 'model_task'
]
