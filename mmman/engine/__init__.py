"""MMEngine plumbing: optim wrapper, its constructor and runner hooks."""
from .constructor import LocalOptimWrapperConstructor
from .hooks import (BlockCollapseHook, BlockParallelHook,
                    LocalLearningHook, start_local_training)
from .local_losses import NonFiniteLocalLossError
from .optim_wrapper import (LocalAmpOptimWrapper, LocalLearningMixin,
                            LocalOptimWrapper)
from .resume_signature import PlanMismatchError

__all__ = [
    'LocalOptimWrapperConstructor', 'BlockCollapseHook', 'BlockParallelHook',
    'LocalLearningHook',
    'LocalAmpOptimWrapper', 'LocalLearningMixin', 'LocalOptimWrapper',
    'NonFiniteLocalLossError', 'PlanMismatchError', 'start_local_training'
]
