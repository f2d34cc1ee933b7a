"""Load MMEngine's own checkpoints on torch >= 2.6 without unsafe pickle.

torch 2.6 made ``torch.load(weights_only=True)`` the default and MMEngine
0.10.7 calls ``torch.load`` without the argument, so ``--resume``,
``load_from`` and testing a checkpoint MMEngine saved itself fail with
``UnpicklingError``: the ``message_hub`` holds ``HistoryBuffer`` objects whose
bound statistic methods pickle through ``getattr`` and numpy arrays.

Allowing ``getattr`` as a safe global would open every attribute of every
object, so instead local checkpoints go through a loader (registered with
MMEngine's public ``CheckpointLoader.register_scheme``) that tries torch's
weights-only loader first and otherwise unpickles with a restricted
allowlist: tensors and storages, plain containers, numpy arrays and dtypes,
``HistoryBuffer``, and ``getattr`` only for a ``HistoryBuffer``'s statistic
methods.
"""
import collections
import os.path as osp
import pickle

import numpy as np
import torch
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader


_DEFAULT_STATISTICS = {'min', 'max', 'current', 'mean'}


def _history_buffer_method(obj, name):
    """``getattr`` restricted to the statistic methods of a HistoryBuffer."""
    owner = obj if isinstance(obj, type) else type(obj)
    # The defaults are registered lazily, by the first HistoryBuffer made.
    allowed = _DEFAULT_STATISTICS | set(HistoryBuffer._statistics_methods)
    if issubclass(owner, HistoryBuffer) and name in allowed:
        return getattr(obj, name)
    raise pickle.UnpicklingError(
        f'refused getattr({owner.__name__}, {name!r}) in a checkpoint')


def _allowed_globals():
    allowed = {
        ('collections', 'OrderedDict'): collections.OrderedDict,
        ('builtins', 'set'): set,
        ('builtins', 'frozenset'): frozenset,
        ('builtins', 'slice'): slice,
        ('builtins', 'getattr'): _history_buffer_method,
        ('__builtin__', 'getattr'): _history_buffer_method,
        ('_codecs', 'encode'): __import__('codecs').encode,
        ('numpy', 'ndarray'): np.ndarray,
        ('numpy', 'dtype'): np.dtype,
        ('numpy.core.multiarray', '_reconstruct'):
        np.core.multiarray._reconstruct,
        ('numpy.core.multiarray', 'scalar'): np.core.multiarray.scalar,
        ('mmengine.logging.history_buffer', 'HistoryBuffer'): HistoryBuffer,
    }
    for code in np.typecodes['All']:
        cls = type(np.dtype(code))
        allowed[(cls.__module__, cls.__name__)] = cls
    for name in ('_rebuild_tensor_v2', '_rebuild_parameter',
                 '_rebuild_parameter_with_state'):
        allowed[('torch._utils', name)] = getattr(torch._utils, name)
    allowed[('torch', 'Size')] = torch.Size
    allowed[('torch', 'device')] = torch.device
    return allowed


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that builds nothing outside an explicit allowlist."""
    allowed = None

    def find_class(self, module, name):
        if _RestrictedUnpickler.allowed is None:
            _RestrictedUnpickler.allowed = _allowed_globals()
        found = self.allowed.get((module, name))
        if found is None and module == 'torch' and isinstance(
                getattr(torch, name, None), torch.dtype):
            found = getattr(torch, name)
        if found is None:
            raise pickle.UnpicklingError(
                f'checkpoint refers to {module}.{name}, which mmman does not '
                'load (not part of an MMEngine checkpoint).')
        return found


class _RestrictedPickle:
    """``pickle_module`` for ``torch.load`` with the restricted unpickler."""
    Unpickler = _RestrictedUnpickler
    load = staticmethod(lambda f, **kw: _RestrictedUnpickler(f, **kw).load())
    __name__ = 'mmman_restricted_pickle'


def load_local_checkpoint(filename, map_location=None):
    """Local-file loader for MMEngine: weights-only, else restricted."""
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    try:
        return torch.load(filename, map_location=map_location,
                          weights_only=True)
    except pickle.UnpicklingError:
        return torch.load(
            filename,
            map_location=map_location,
            weights_only=False,
            pickle_module=_RestrictedPickle)


def allow_mmengine_checkpoints() -> None:
    """Route MMEngine's local checkpoint loading through the safe loader."""
    CheckpointLoader.register_scheme(
        prefixes='', loader=load_local_checkpoint, force=True)
