"""What a resumed checkpoint must share with the config: the plan signature
(and how older checkpoints are read).

The signature (method, objective, eta branches, block ends) is saved as
``checkpoint['optimizer']['mmman_plan']``. It holds plain builtins only
(dict, list, str, numbers, bool, None), so that mmman's weights-only
checkpoint loader reads it back: MMEngine hands configs around as
``ConfigDict`` objects, which that loader refuses to unpickle.
"""
from collections.abc import Mapping
from typing import Optional

from mmman.local.partition import BlockPlan


class PlanMismatchError(RuntimeError):
    """A checkpoint's local-learning plan differs from the config's."""


# Submodules a default auxiliary head gained since earlier checkpoints, and
# how to resume those: the config did not change, the head's layout did.
HEAD_LAYOUT_HINTS = {
    '.reduce.': 'the checkpoint\'s auxiliary heads read their input without '
    'the 1x1 reduction: resume with the aux_head it was trained with '
    '(reduce_channels=None)',
    '.trunk.': 'the checkpoint\'s CenterNet auxiliary heads have a 3x3 conv '
    'per branch (the default until 2026-12-05): resume with '
    'aux_head.head.type=\'mmdet.CenterNetHead\'',
}


def to_builtins(value):
    """``value`` with every mapping a ``dict`` and every sequence a
    ``list``, recursively (``ConfigDict`` and tuples included)."""
    if isinstance(value, Mapping):
        return {str(k): to_builtins(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_builtins(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f'local learning: cannot save {type(value).__name__} '
                    f'({value!r}) in the plan signature.')


def plan_signature(method: str, objective, eta_cfg: Optional[dict],
                   plan: BlockPlan) -> dict:
    """The signature of a run, in plain builtins."""
    eta = None
    if eta_cfg is not None:
        # Neither the momentum nor recomputation changes what is saved.
        eta = {k: v for k, v in eta_cfg.items()
               if k not in ('momentum', 'recompute')}
    signature = dict(
        method=method,
        eta=eta,
        blocks=[
            plan.boundary_unit(k).name for k in range(plan.num_blocks - 1)
        ])
    if objective is not None:
        signature['objective'] = objective
    return to_builtins(signature)


def check_resumable(current: Optional[dict], saved: Optional[dict],
                    local: Optional[dict],
                    aux_shapes: Optional[dict]) -> None:
    """Raise one :class:`PlanMismatchError` when a checkpoint's plan is not
    this config's.

    Args:
        current (dict, optional): This config's signature (None: end to end).
        saved (dict, optional): The checkpoint's signature.
        local (dict, optional): The checkpoint's auxiliary state.
        aux_shapes (dict, optional): This config's auxiliary state: key to
            shape.
    """
    if local is None and current is None:
        return
    if local is None:
        diff = ('the checkpoint has no local-learning state (trained end '
                f'to end); this config trains with method '
                f'"{current["method"]}" over {current["blocks"]}')
    elif current is None:
        diff = (f'the checkpoint trained with method "{saved["method"]}"'
                if saved else 'the checkpoint holds local-learning '
                'state') + '; this config trains end to end'
    else:
        diffs = []
        if saved is not None:
            saved = to_builtins(saved)  # older checkpoints: ConfigDicts
            diffs = [
                f'{key}: checkpoint {saved.get(key)}, config {current[key]}'
                for key in current if saved.get(key) != current[key]
            ]
        aux_keys = set(aux_shapes)
        if not diffs and set(local) != aux_keys:
            missing = sorted(aux_keys - set(local))[:3]
            extra = sorted(set(local) - aux_keys)[:3]
            diffs = ['auxiliary networks: missing in the checkpoint '
                     f'{missing}, not in this config {extra}']
            diffs += [
                hint for part, hint in HEAD_LAYOUT_HINTS.items()
                if any(part in key for key in aux_keys - set(local))
            ]
        if not diffs:
            resized = [(k, tuple(local[k].shape), tuple(aux_shapes[k]))
                       for k in sorted(aux_keys)
                       if tuple(local[k].shape) != tuple(aux_shapes[k])]
            if resized:
                key, had, has = resized[0]
                diffs = [f'auxiliary networks: {len(resized)} tensors of '
                         f'another shape, e.g. {key} checkpoint {list(had)}, '
                         f'config {list(has)}: resume with the aux_head it '
                         'was trained with (its widths, e.g. '
                         'head.feat_channels)']
        if not diffs:
            return
        diff = '; '.join(diffs)
    raise PlanMismatchError(
        'local learning: cannot resume, the checkpoint\'s plan differs '
        f'from this config\'s ({diff}). Resume with the config it was '
        'trained with, or start from its weights instead: '
        '`load_from=CKPT` without `resume` (e.g. tools/train.py CONFIG '
        '--cfg-options load_from=CKPT); the eta copies are then taken '
        'from the loaded weights.')


def split_legacy_no_decay_group(optim_state: dict, current_groups: list,
                                aux_params: list) -> dict:
    """Optimizer state of a checkpoint written before MAN++'s balance
    scalars had a param group of their own (no weight decay).

    Such checkpoints hold the auxiliary parameters in one last group, in
    ``aux_params`` order; that group is split the way the current optimizer
    splits them, so each parameter finds its own momentum again.

    Args:
        optim_state (dict): The checkpoint's ``optimizer.state_dict()``.
        current_groups (list): The current optimizer's param groups.
        aux_params (list): The trainable auxiliary parameters, in the order
            the older constructor grouped them.
    """
    saved = optim_state['param_groups']
    if not current_groups or not current_groups[-1].get('mmman_no_decay') \
            or len(saved) != len(current_groups) - 1:
        return optim_state
    no_decay = {id(p) for p in current_groups[-1]['params']}
    old = saved[-1]
    if len(old['params']) != len(aux_params):
        return optim_state  # not that layout: let the optimizer say so
    keep = [i for i, p in zip(old['params'], aux_params)
            if id(p) not in no_decay]
    split = [i for i, p in zip(old['params'], aux_params) if id(p) in no_decay]
    groups = saved[:-1] + [
        dict(old, params=keep),
        dict(old, params=split, weight_decay=0.0, mmman_no_decay=True)
    ]
    return dict(optim_state, param_groups=groups)
