"""Let torchvision's pure-Python part import where its C++ ops cannot load.

PyPI's torchvision 0.28.0 (the release for torch 2.13) links the CUDA build
of torch; with the CPU build its ``_C`` extension does not load. torchvision
tolerates that everywhere except ``torchvision/_meta_registrations.py``,
whose ``register_fake('torchvision::nms')`` and ``('torchvision::qnms')``
raise "operator torchvision::nms does not exist" at import. MMPretrain
imports torchvision (transforms, box utilities), so it could not be used.

:func:`define_missing_torchvision_ops` runs before torchvision is first
imported. Only when torchvision is installed, not yet imported, and its own
``_C`` extension does not load, it defines the schemas of those two operators
(no kernels) and says so once in the log. torchvision then imports; calling
one of its C++ ops (``torchvision.ops.nms``, ``roi_align``...) raises
torchvision's own "Couldn't load custom C++ ops". Where the extension loads,
nothing is defined.

The same must hold in processes that never import mmman (MMDet, MMSeg or
MMPretrain evaluating a checkpoint on their own): ``tools/install.sh`` links
this file into the virtualenv's site-packages as ``mmman_torchvision_compat``
with a ``.pth`` line that calls :func:`install_import_hook` at start-up. The
hook is a meta-path finder that acts once, when ``torchvision`` is first
imported, and costs nothing otherwise. This module therefore imports only the
standard library at import time.
"""
import importlib.abc
import importlib.machinery
import importlib.util
import os.path as osp
import sys
from typing import Optional

# From torchvision 0.28.0's csrc/ops (the schemas its _C.so defines).
OP_SCHEMAS = (
    'nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor',
    'qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor',
)

_library = None  # the torch.library.Library that keeps the schemas alive


def torchvision_extension() -> Optional[str]:
    """Path of torchvision's ``_C`` extension, or None (not installed/no
    extension file), found without importing torchvision."""
    spec = importlib.util.find_spec('torchvision')
    if spec is None or not spec.submodule_search_locations:
        return None
    finder = importlib.machinery.FileFinder(
        list(spec.submodule_search_locations)[0],
        (importlib.machinery.ExtensionFileLoader,
         importlib.machinery.EXTENSION_SUFFIXES))
    ext = finder.find_spec('_C')
    return ext.origin if ext is not None else None


def torchvision_ops_load(path: str) -> bool:
    """Whether torchvision's extension at ``path`` loads into this torch.

    The same call torchvision makes at import; on success the library stays
    loaded, as it would after ``import torchvision``.
    """
    import torch
    try:
        torch.ops.load_library(path)
    except (OSError, ImportError, RuntimeError):
        return False
    return True


def define_missing_torchvision_ops() -> bool:
    """Define ``torchvision::nms``/``qnms`` if torchvision cannot load its
    C++ ops; returns whether it did (now or in an earlier call)."""
    global _library
    if _library is not None:
        return True
    if 'torchvision' not in sys.modules and importlib.util.find_spec(
            'torchvision') is None:
        return False
    import torch
    if _nms_defined(torch):  # torchvision's own, or the start-up hook's
        return not torch._C._dispatch_has_kernel_for_dispatch_key(
            'torchvision::nms', 'CPU')
    if 'torchvision' in sys.modules:
        return False
    ext = torchvision_extension()
    if ext is not None and torchvision_ops_load(ext):
        return False
    library = torch.library.Library('torchvision', 'DEF')
    for schema in OP_SCHEMAS:
        library.define(schema)
    _library = library
    from mmengine.logging import print_log
    where = osp.basename(ext) if ext else 'no _C extension'
    print_log(
        f'mmman: torchvision\'s C++ ops are unavailable ({where} does not '
        'load into this torch build); defined the torchvision::nms/qnms '
        'schemas so that torchvision imports. Its Python part (transforms, '
        'models) works; its C++ ops (nms, roi_align, ...) raise when called.',
        logger='current',
        level=30)  # logging.WARNING
    return True


def _nms_defined(torch) -> bool:
    try:
        torch.ops.torchvision.nms
    except (AttributeError, RuntimeError):
        return False
    return True


class _BeforeTorchvisionImport(importlib.abc.MetaPathFinder):
    """Runs :func:`define_missing_torchvision_ops` when ``torchvision`` is
    first imported, then leaves the import to the regular finders."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname == 'torchvision':
            sys.meta_path.remove(self)
            define_missing_torchvision_ops()
        return None


def install_import_hook() -> None:
    """Called at interpreter start-up by the virtualenv's ``.pth`` line."""
    if not any(isinstance(f, _BeforeTorchvisionImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _BeforeTorchvisionImport())
