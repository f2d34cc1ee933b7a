"""mmman: supervised local learning with Momentum Auxiliary Networks.

Importing mmman registers its optim wrappers, constructor, hooks and
auxiliary modules in MMEngine's root registries, so configs of every
OpenMMLab library (``default_scope`` mmdet, mmseg, mmpretrain) find them by
plain type name. With MMPretrain installed it also registers the CIFAR
ResNets and the SVHN and STL-10 datasets. It does nothing else: the
checkpoint loader is installed by mmman's tools and ``LocalLearningHook``
(:mod:`mmman.utils.checkpoint`), and torchvision's missing operator schemas
by the virtualenv's start-up hook (:mod:`mmman.utils.torchvision_compat`).
"""
from importlib.util import find_spec

from .engine import *  # noqa: F401,F403
from .heads import *  # noqa: F401,F403
from .local import *  # noqa: F401,F403
from .tasks import *  # noqa: F401,F403
from .version import __version__

if find_spec('mmpretrain') is not None:
    from .datasets.official import STL10, SVHN  # noqa: F401
    from .models import CifarResNet  # noqa: F401

__all__ = ['__version__']
