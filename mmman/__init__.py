"""mmman: supervised local learning with Momentum Auxiliary Networks.

Importing mmman registers its optim wrappers, constructor and auxiliary
modules in MMEngine's root registries, so configs of every OpenMMLab library
(``default_scope`` mmdet, mmseg, mmpretrain) find them by plain type name.
With MMPretrain installed it also registers the CIFAR ResNets and the SVHN
and STL-10 datasets.
"""
from importlib.util import find_spec

# First, before anything imports torchvision (MMPretrain does): see
# mmman/utils/torchvision_compat.py.
from .utils.torchvision_compat import define_missing_torchvision_ops

define_missing_torchvision_ops()

from .engine import *  # noqa: F401,F403,E402
from .local import *  # noqa: F401,F403,E402
from .tasks import *  # noqa: F401,F403,E402
from .utils import allow_mmengine_checkpoints  # noqa: E402
from .version import __version__  # noqa: E402

if find_spec('mmpretrain') is not None:
    from .datasets.official import STL10, SVHN  # noqa: F401
    from .models import CifarResNet  # noqa: F401

allow_mmengine_checkpoints()

__all__ = ['__version__']
