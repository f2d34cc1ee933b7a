"""One entry point for the block plan: even, named, balanced or cached."""
from typing import Callable, Optional, Sequence

import torch.nn as nn

from .balance import balanced_ends, estimate_costs, resolve_balance_cfg
from .partition import (BlockPlan, PartitionError, backbone_units,
                        build_block_plan, check_num_blocks)
from .plan_cache import BlockPlanCache, plan_key


def eta_branches(eta_cfg: Optional[dict]) -> int:
    """How many eta copies' activations of the next unit a block's local
    backward holds at once (0-2): each copy's, or one with ``recompute``."""
    eta = eta_cfg or {}
    n = int(eta.get('learnable_copy', False)) + int(eta.get('ema', False))
    return min(n, 1) if eta.get('recompute', False) else n


def plan_blocks(model: nn.Module,
                method: str,
                num_blocks: Optional[int] = None,
                boundaries=None,
                balance=None,
                eta_cfg: Optional[dict] = None,
                mlaan_cfg: Optional[dict] = None,
                backbone: str = 'backbone',
                batch_fn: Optional[Callable] = None,
                checkpointed: Sequence[int] = ()) -> BlockPlan:
    """The block plan of ``model`` for ``local_cfg``'s split settings.

    Args:
        model (nn.Module): The unwrapped model.
        method (str): The local-learning method (part of the cache key).
        num_blocks, boundaries: K, or the explicit last units of the blocks.
        balance: ``local_cfg.balance`` (None/False: even split; True or a
            dict with ``img_scale`` and ``cache_dir``: split by measured
            activation memory, cached in ``cache_dir``).
        eta_cfg, mlaan_cfg (dict, optional): The method's eta and MLAAN
            settings (the balance accounts for the eta branches).
        backbone (str): Module path of the backbone.
        batch_fn (callable): ``size -> (inputs, data_samples)`` of two
            synthetic images; needed only when balancing.
        checkpointed (list[int]): 0-based blocks whose units are
            checkpointed (``local_cfg.checkpoint``); the balance costs them
            so.
    """
    balance = resolve_balance_cfg(balance)
    if balance is None:
        return build_block_plan(model, num_blocks, boundaries, backbone)
    if mlaan_cfg is not None:
        raise PartitionError(
            'local learning: balance does not support MLAAN: its cascade '
            'runs the next block and its leap module on every block\'s '
            'output, memory the balance does not measure (a "balanced" '
            'MLAAN split held 2.68x block 1\'s saved activations under '
            '`local`). Use the even split (balance=None) or explicit '
            '`boundaries`.')
    if boundaries is not None:
        raise PartitionError(
            'local learning: give `boundaries` or `balance`, not both '
            '(balance places the boundaries itself).')
    if num_blocks is None:
        raise PartitionError('local learning: balance needs num_blocks.')
    if balance.get('img_scale') is None:
        raise PartitionError(
            'local learning: balance needs img_scale=(H, W). mmman\'s '
            'tools/train.py takes it from the train pipeline\'s last '
            'resize or crop; this pipeline fixes none (or the config was '
            'not loaded through mmman.apis.load_config). Give '
            'balance=dict(img_scale=(H, W)), or balance=None for the '
            'even split.')
    units, _ = backbone_units(model, backbone)
    check_num_blocks(units, num_blocks)
    branches = eta_branches(eta_cfg)
    img_scale = tuple(balance['img_scale'])
    cache = (BlockPlanCache(balance['cache_dir'])
             if balance.get('cache_dir') else None)
    key = plan_key(model, img_scale, num_blocks, branches, method,
                   checkpointed) if cache else None
    found = cache.get(key) if cache else None
    if found is None:
        costs, stem, tail, inputs = estimate_costs(
            model, units, batch_fn, img_scale, inputs=True)
        ends = balanced_ends(units, costs, stem, tail, num_blocks, branches,
                             inputs, checkpointed)
        found = [units[e].name for e in ends]
        if cache:
            cache.put(key, found, img_scale=list(img_scale),
                      num_blocks=num_blocks, method=method,
                      model=type(model).__name__)
    return build_block_plan(model, boundaries=found, backbone=backbone)
