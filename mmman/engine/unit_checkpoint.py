"""Activation checkpointing of the backbone units inside local blocks.

``local_cfg.checkpoint`` (``'all'`` or 1-based block indices) makes every
unit of the chosen blocks keep only its input in forward and recompute its
activations in the backward that needs them: block k's own local backward,
or the model loss's backward for the last block. It works on any unit the
partition finds (ResNet BasicBlock/Bottleneck, ViT layers, VGG convs, ...),
whether or not the host has ``with_cp``. With the last block, the neck (FPN)
and a segmentation decode head (ASPP) are checkpointed too; the stem and the
detection heads are not.

Inside ``optim_context`` each unit's ``forward`` is shadowed by an instance
attribute that calls non-reentrant ``torch.utils.checkpoint`` (the technique
of MMEngine's ``turn_on_activation_checkpointing``); on exit the attribute is
removed, so between steps the model, its ``state_dict`` and deep copies of it
(``EMAHook``) are the plain model. Frames already recorded keep the original
``forward``, so the last block's recomputation in ``update_params``, after
the context, still works. Non-reentrant checkpointing needs no input that
requires grad (a block's first unit gets a detached input) and passes
keyword and non-tensor arguments (Swin's ``hw_shape``); what makes the
recomputation exact (modes, buffers, RNG) is :mod:`mmman.utils.recompute`.
"""
from contextlib import contextmanager
from typing import Callable, Optional, Sequence, Tuple

import torch.nn as nn

from mmman.utils.recompute import checkpointed

_HINT = ("local_cfg.checkpoint must be None, 'all' or a list of 1-based "
         'block indices')
_NO_ATTR = object()


def checkpoint_blocks(value, num_blocks: Optional[int] = None
                      ) -> Tuple[int, ...]:
    """0-based indices of the blocks ``local_cfg.checkpoint`` names.

    Args:
        value: None (none), ``'all'`` or a list of 1-based block indices.
        num_blocks (int, optional): K. None checks the value alone (then
            ``'all'`` gives no indices).

    Raises:
        ValueError: on a value of another kind, a repeated index, or an
            index outside 1..K.
    """
    if value is None:
        return ()
    if isinstance(value, str):
        if value != 'all':
            raise ValueError(f'{_HINT}, not {value!r}.')
        return tuple(range(num_blocks or 0))
    if not isinstance(value, (list, tuple)) or not all(
            isinstance(i, int) and not isinstance(i, bool) for i in value):
        raise ValueError(f'{_HINT}, not {value!r}.')
    if len(set(value)) != len(value):
        raise ValueError(
            f'local_cfg.checkpoint {list(value)} names a block twice.')
    top = num_blocks if num_blocks is not None else float('inf')
    bad = [i for i in value if not 1 <= i <= top]
    if bad:
        span = f'1..{num_blocks}' if num_blocks is not None else '1..K'
        raise ValueError(
            f'local_cfg.checkpoint: blocks are numbered {span}'
            f'{f" (K={num_blocks})" if num_blocks is not None else ""}; '
            f'{bad} is out of range.')
    return tuple(sorted(i - 1 for i in value))


@contextmanager
def shadowed_forwards(modules: Sequence[nn.Module], make: Callable):
    """Give every module of ``modules`` the ``forward`` ``make(module,
    forward)`` returns while the context is open.

    Each module's ``forward`` is shadowed by an instance attribute (an
    existing one, e.g. MMEngine's ``activation_checkpointing``, is wrapped
    and put back on exit).
    """
    shadowed, seen = [], set()
    try:
        for module in modules:
            if id(module) in seen:
                continue
            seen.add(id(module))
            had = vars(module).get('forward', _NO_ATTR)
            module.forward = make(module, module.forward)
            shadowed.append((module, had))
        yield
    finally:
        for module, had in reversed(shadowed):
            if had is _NO_ATTR:
                del module.forward
            else:
                module.forward = had


def checkpointed_units(modules: Sequence[nn.Module]):
    """Checkpoint every module of ``modules`` while the context is open
    (:func:`shadowed_forwards`)."""
    return shadowed_forwards(modules, checkpointed)
