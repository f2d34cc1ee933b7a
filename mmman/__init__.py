"""mmman: supervised local learning with Momentum Auxiliary Networks.

Importing mmman registers its optim wrappers, constructor and auxiliary
modules in MMEngine's root registries, so configs of every OpenMMLab library
(``default_scope`` mmdet, mmseg, mmpretrain) find them by plain type name.
"""
from .engine import *  # noqa: F401,F403
from .local import *  # noqa: F401,F403
from .tasks import *  # noqa: F401,F403
from .utils import allow_mmengine_checkpoints
from .version import __version__

allow_mmengine_checkpoints()

__all__ = ['__version__']
