"""Recompute a module's activations in backward, exactly.

Non-reentrant ``torch.utils.checkpoint`` around one module, made safe for
training: the recomputation runs the module's submodules in the modes they
had in forward (train/eval, and BatchNorm's ``track_running_stats``, which
MLAAN's cascade turns off), leaves the module's buffers as it found them (so
BatchNorm running statistics move once per step) and replays the RNG state
(dropout, drop path). Whatever a recomputation saves is counted by the active
memory meter (:func:`~mmman.utils.memory.counted_recomputation`).
"""
from contextlib import contextmanager, nullcontext
from functools import partial
from typing import Sequence

import torch
import torch.nn as nn
from torch.utils.checkpoint import checkpoint

from .memory import counted_recomputation


def _updates_statistics(module: nn.Module) -> bool:
    """Whether ``module`` is a norm layer whose forward updates its running
    statistics (its kernel writes them without moving their version
    counter)."""
    return (isinstance(module, nn.modules.batchnorm._NormBase)
            and module.training and module.track_running_stats)


@contextmanager
def restored_buffers(module: nn.Module):
    """Put back, on exit, every buffer of ``module`` the body changed
    (BatchNorm running statistics and ``num_batches_tracked``).

    Changed means: a running statistic of a norm layer in training mode, or
    a buffer whose version counter moved (an in-place write). No value is
    compared, so nothing is read back to the host (``torch.equal`` waits for
    a GPU), and buffers saved for backward (an eval-mode BatchNorm's) are
    never written.
    """
    updated = {
        id(b)
        for m in module.modules() if _updates_statistics(m)
        for b in m.buffers(recurse=False)
    }
    saved = [(b, b.clone(), b._version) for b in module.buffers()]
    try:
        yield
    finally:
        with torch.no_grad():
            for buf, old, version in saved:
                if id(buf) in updated or buf._version != version:
                    buf.copy_(old)


def _modes(modules: Sequence[nn.Module]) -> list:
    return [(m.training, getattr(m, 'track_running_stats', None))
            for m in modules]


@contextmanager
def modes_of_forward(modules: Sequence[nn.Module], modes: list):
    """Run the body with ``modules`` in ``modes`` (from :func:`_modes`, taken
    in forward); their current modes are put back on exit. A recomputation
    that saves other tensors than its forward (BatchNorm tracking running
    statistics or not) is an error of checkpoint's."""
    now = _modes(modules)
    _set_modes(modules, modes)
    try:
        yield
    finally:
        _set_modes(modules, now)


def _set_modes(modules, modes) -> None:
    for m, (training, track) in zip(modules, modes):
        m.training = training
        if track is not None:
            m.track_running_stats = track


@contextmanager
def _recomputation(module: nn.Module, modules: list, modes: list):
    with modes_of_forward(modules, modes), restored_buffers(module), \
            counted_recomputation():
        yield


def _contexts(module: nn.Module):
    """checkpoint's ``context_fn``, called in forward."""
    modules = list(module.modules())
    return nullcontext(), _recomputation(module, modules, _modes(modules))


def checkpointed(module: nn.Module, forward):
    """``forward`` checkpointed while ``module`` trains with grad enabled."""

    def run(*args, **kwargs):
        if not (module.training and torch.is_grad_enabled()):
            return forward(*args, **kwargs)
        return checkpoint(
            forward,
            *args,
            use_reentrant=False,
            context_fn=partial(_contexts, module),
            **kwargs)

    return run


def tail_modules(model: nn.Module) -> list:
    """What the last checkpointed block also recomputes: the model's neck
    (FPN) and its segmentation decode head's ``forward`` (ASPP), each
    called once per step on the backbone's outputs. RPN, RoI and
    detection heads, which sample in their loss, are left as they are."""
    return [
        m for m in (getattr(model, 'neck', None),
                    getattr(model, 'decode_head', None))
        if isinstance(m, nn.Module) and any(
            p.requires_grad for p in m.parameters())
    ]
