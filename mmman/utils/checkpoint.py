"""Load MMEngine's own checkpoints on torch >= 2.6 without unsafe pickle.

torch 2.6 made ``torch.load(weights_only=True)`` the default and MMEngine
0.10.7 calls ``torch.load`` without the argument, so ``--resume``,
``load_from`` and testing a checkpoint MMEngine saved itself fail with
``UnpicklingError``. Besides tensors and containers (``Counter`` of
``MultiStepLR``'s milestones included), MMEngine, MMDet, MMSeg and
MMPretrain checkpoints hold (surveyed in tests/test_schedulers_checkpoint.py):

- numpy arrays and scalars (message hub: ``eta``, metrics, ``best_score``);
- ``HistoryBuffer`` objects (message hub), whose state carries their
  statistic methods, pickled as ``getattr(HistoryBuffer, 'min')`` ...;
- ``OneCycleParamScheduler``'s ``anneal_func``, a static method pickled as
  ``getattr(OneCycleParamScheduler, '_annealing_cos')``.

mmman's own checkpoints written before the plan signature held only builtins
also hold MMEngine ``ConfigDict`` objects (pickled as ``ConfigDict(dict)``):
they are read back as plain dicts.

Local checkpoints therefore go through torch's own weights-only unpickler
with these types allowed for the duration of the load
(``torch.serialization.safe_globals``). ``getattr`` itself is never allowed:
the name ``builtins.getattr`` is bound to :func:`_restricted_getattr`, which
returns only the attributes listed in :data:`GETATTR_ALLOWED`. The loader is
registered with MMEngine's public ``CheckpointLoader.register_scheme``, never
at import: mmman's tools install it for their process
(:func:`allow_mmengine_checkpoints`), :class:`~mmman.engine.LocalLearningHook`
for one run of a Runner, and library code that loads a checkpoint for the
duration of that load (:func:`mmengine_checkpoints_allowed`); leaving restores
whatever loader was there.
"""
from contextlib import contextmanager
import os.path as osp
import pickle

import numpy as np
import torch
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.optim.scheduler.param_scheduler import OneCycleParamScheduler
from mmengine.runner.checkpoint import CheckpointLoader

# Attributes a checkpoint may fetch with ``getattr(owner, name)`` (owner: the
# class or an instance of it). Python's pickle protocol 2 (torch's) stores a
# function defined in a class body that way.
GETATTR_ALLOWED = {
    HistoryBuffer: ('min', 'max', 'current', 'mean'),
    OneCycleParamScheduler: ('_annealing_cos', '_annealing_linear'),
}


def _restricted_getattr(obj, name):
    """``getattr`` for the ``(owner, name)`` pairs of GETATTR_ALLOWED."""
    owner = obj if isinstance(obj, type) else type(obj)
    if name in GETATTR_ALLOWED.get(owner, ()):
        return getattr(obj, name)
    raise pickle.UnpicklingError(
        f'refused getattr({owner.__name__}, {name!r}) in a checkpoint')


def _config_dict_as_dict(items) -> dict:
    """What an old checkpoint's ``ConfigDict(items)`` is loaded as."""
    return dict(items)


def _numpy_globals() -> list:
    """numpy arrays, scalars and dtypes, under numpy 1 and numpy 2 names."""
    try:
        from numpy._core import multiarray  # numpy >= 2
    except ImportError:
        from numpy.core import multiarray
    found = [np.ndarray, np.dtype]
    found += [type(np.dtype(code)) for code in np.typecodes['All']]
    for module in ('numpy.core.multiarray', 'numpy._core.multiarray'):
        found += [(multiarray._reconstruct, f'{module}._reconstruct'),
                  (multiarray.scalar, f'{module}.scalar')]
    return found


def checkpoint_safe_globals() -> list:
    """What mmman adds to torch's weights-only allowlist for a load."""
    return [
        frozenset, slice, HistoryBuffer, *GETATTR_ALLOWED,
        (_restricted_getattr, 'builtins.getattr'),
        (_config_dict_as_dict, 'mmengine.config.config.ConfigDict'),
        *_numpy_globals()
    ]


def _safe_globals():
    """``torch.serialization.safe_globals`` for the entries of
    :func:`checkpoint_safe_globals` not already allowed, so that leaving it
    keeps what the user allowed globally."""
    present = set(torch.serialization.get_safe_globals())
    return torch.serialization.safe_globals(
        [g for g in checkpoint_safe_globals() if g not in present])


class CheckpointRefusedError(pickle.UnpicklingError):
    """A checkpoint needs more than data to load (code, unknown classes)."""


def load_local_checkpoint(filename, map_location=None):
    """Local-file loader for MMEngine: torch's weights-only unpickler with
    MMEngine's checkpoint types allowed; anything else is refused."""
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    with _safe_globals():
        try:
            return torch.load(
                filename, map_location=map_location, weights_only=True)
        except pickle.UnpicklingError as e:
            unknown = sorted(_unknown_globals(filename))
            detail = _reason(e)
            what = (f'refers to {", ".join(unknown)}, which mmman does not '
                    'load' if unknown else 'was refused')
            raise CheckpointRefusedError(
                f'{filename}: checkpoint {what}. mmman loads tensors, '
                'containers, numpy arrays and the state of MMEngine\'s '
                'runner, hooks and schedulers, never code. If you trust '
                'the file, convert it once with torch.load(path, '
                f'weights_only=False). ({detail})') from None


def _reason(error) -> str:
    """The line of torch's weights-only error that says what was refused."""
    text = str(error).split('WeightsUnpickler error:')[-1]
    lines = [
        line.strip() for line in text.splitlines()
        if line.strip() and not line.startswith('Check the documentation')
    ]
    return lines[-1] if lines else text


def _unknown_globals(filename) -> list:
    try:
        return torch.serialization.get_unsafe_globals_in_checkpoint(filename)
    except Exception:  # not a zip checkpoint: the details say why
        return []


def _local_loader():
    """The loader MMEngine uses now for local files."""
    return CheckpointLoader._get_checkpoint_loader('')


def allow_mmengine_checkpoints():
    """Route MMEngine's local checkpoint loading through the safe loader;
    returns the loader it replaced (for :func:`restore_checkpoint_loader`)."""
    previous = _local_loader()
    CheckpointLoader.register_scheme(
        prefixes='', loader=load_local_checkpoint, force=True)
    return previous


def restore_checkpoint_loader(previous) -> None:
    """Put back the local-file loader :func:`allow_mmengine_checkpoints`
    replaced."""
    if previous is not None:
        CheckpointLoader.register_scheme(
            prefixes='', loader=previous, force=True)


@contextmanager
def mmengine_checkpoints_allowed():
    """The safe loader for the checkpoint loads inside the block."""
    previous = allow_mmengine_checkpoints()
    try:
        yield
    finally:
        restore_checkpoint_loader(previous)
