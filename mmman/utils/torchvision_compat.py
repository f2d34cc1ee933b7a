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
MMPretrain evaluating a checkpoint on their own): ``tools/install.sh`` runs
``tools/misc/install_torchvision_hook.py``, which, only where torchvision's
extension does not load (:func:`import_hook_needed`), copies this file into
the virtualenv's site-packages as ``mmman_torchvision_compat`` with a
``.pth`` line (:data:`PTH_LINE`) that calls :func:`install_import_hook` at
start-up (:func:`write_import_hook`); where it loads, it removes them
(:func:`remove_import_hook`). The copy does not depend on the checkout: a
moved or deleted checkout leaves it working. The ``.pth`` line does nothing
when the copy is missing, and a hook that fails when torchvision is imported
says so in one warning and lets the import go on. The hook is a meta-path
finder that acts once, when ``torchvision`` is first imported, and costs
nothing otherwise. This module therefore imports only the standard library
at import time.
"""
import importlib.abc
import importlib.machinery
import importlib.util
import os
import os.path as osp
import sys
import tempfile
import warnings
from typing import List, Optional

# From torchvision 0.28.0's csrc/ops (the schemas its _C.so defines).
OP_SCHEMAS = (
    'nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor',
    'qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor',
)

_library = None  # the torch.library.Library that keeps the schemas alive

# The start-up hook in a virtualenv: this file copied as HOOK_MODULE, and a
# .pth file whose one line imports it if it is there (site.py runs ``.pth``
# lines that start with ``import``; a line that raised would print a
# traceback at every interpreter start).
HOOK_MODULE = 'mmman_torchvision_compat'
PTH_LINE = (f'import importlib.util as u; u.find_spec({HOOK_MODULE!r}) and '
            f'__import__({HOOK_MODULE!r}).install_import_hook()\n')


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
    where = osp.basename(ext) if ext else 'no _C extension'
    message = (
        f'mmman: torchvision\'s C++ ops are unavailable ({where} does not '
        'load into this torch build); defined the torchvision::nms/qnms '
        'schemas so that torchvision imports. Its Python part (transforms, '
        'models) works; its C++ ops (nms, roi_align, ...) raise when called.')
    try:
        from mmengine.logging import print_log
    except ImportError:  # the start-up hook in a virtualenv without MMEngine
        warnings.warn(message, RuntimeWarning, stacklevel=2)
    else:
        print_log(message, logger='current', level=30)  # logging.WARNING
    return True


def _nms_defined(torch) -> bool:
    try:
        torch.ops.torchvision.nms
    except (AttributeError, RuntimeError):
        return False
    return True


class _BeforeTorchvisionImport(importlib.abc.MetaPathFinder):
    """Runs :func:`define_missing_torchvision_ops` when ``torchvision`` is
    first imported, then leaves the import to the regular finders.

    Fails soft: if that call raises (a broken torch, say), one warning says
    so and torchvision's import goes on (and fails, if it does, with
    torchvision's own error).
    """

    def find_spec(self, fullname, path=None, target=None):
        if fullname == 'torchvision':
            if self in sys.meta_path:
                sys.meta_path.remove(self)
            try:
                define_missing_torchvision_ops()
            except Exception as e:  # noqa: BLE001 (never break the import)
                first = (str(e).splitlines() or [''])[0]
                warnings.warn(
                    f'{HOOK_MODULE}: could not prepare torchvision\'s import '
                    f'({type(e).__name__}: {first}); importing torchvision '
                    'without it.', RuntimeWarning, stacklevel=2)
        return None


def install_import_hook() -> None:
    """Called at interpreter start-up by the virtualenv's ``.pth`` line."""
    if not any(isinstance(f, _BeforeTorchvisionImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _BeforeTorchvisionImport())


def import_hook_needed() -> bool:
    """Whether this interpreter needs the start-up hook: torchvision is
    installed and its ``_C`` extension is missing or does not load into the
    installed torch. Imports torch (not torchvision) when torchvision is
    installed; loads the extension where it loads."""
    for finder in list(sys.meta_path):  # decide without a hook acting
        # (also another copy's: the site-packages one, loaded at start-up)
        if type(finder).__name__ == _BeforeTorchvisionImport.__name__:
            sys.meta_path.remove(finder)
    if importlib.util.find_spec('torchvision') is None:
        return False
    ext = torchvision_extension()
    return ext is None or not torchvision_ops_load(ext)


def _hook_paths(site_dir: str) -> List[str]:
    return [
        osp.join(site_dir, HOOK_MODULE + '.py'),
        osp.join(site_dir, HOOK_MODULE + '.pth')
    ]


def write_import_hook(site_dir: str, source: Optional[str] = None) -> None:
    """Copy ``source`` (this file) into ``site_dir`` as :data:`HOOK_MODULE`
    and write the ``.pth`` line; each file is replaced whole (an earlier
    install's symlink is replaced, never written through)."""
    source = source or osp.abspath(__file__)
    with open(source, encoding='utf-8') as f:
        text = f.read()
    compile(text, source, 'exec')  # never install a copy that cannot import
    module, pth = _hook_paths(site_dir)
    for path, content in ((module, text), (pth, PTH_LINE)):
        fd, tmp = tempfile.mkstemp(dir=site_dir, prefix='.' + HOOK_MODULE)
        try:
            with os.fdopen(fd, 'w', encoding='utf-8') as f:
                f.write(content)
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise


def remove_import_hook(site_dir: str) -> List[str]:
    """Remove the hook's files (also a dangling symlink) from ``site_dir``;
    returns the paths removed."""
    removed = []
    for path in _hook_paths(site_dir):
        if osp.lexists(path):
            os.unlink(path)
            removed.append(path)
    return removed
