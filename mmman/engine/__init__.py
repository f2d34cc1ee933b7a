"""MMEngine plumbing: optim wrapper and its constructor."""
from .constructor import LocalOptimWrapperConstructor
from .optim_wrapper import (LocalAmpOptimWrapper, LocalLearningMixin,
                            LocalOptimWrapper)

__all__ = [
    'LocalOptimWrapperConstructor', 'LocalAmpOptimWrapper',
    'LocalLearningMixin', 'LocalOptimWrapper'
]
