"""Memory-balanced block boundaries.

Splitting K blocks by equal unit count leaves them unbalanced: high-resolution
early units cost far more activation memory than late ones, and the last
block also carries neck and heads. Here every unit's activation bytes are
estimated from one forward pass under ``torch.no_grad`` (so estimating never
costs the memory it is meant to save): the bytes of the outputs of its leaf
modules, in-place outputs excluded. The tail (everything after the last unit:
neck, heads, losses) is estimated the same way. Boundaries are then chosen to
minimise the largest block, where a block's cost is its units, plus the eta
branches that run the next unit on its output (MAN: 2), plus, for the last
block, the tail.
"""
import copy
from typing import List, Sequence

import torch
import torch.nn as nn

from .partition import Unit


def estimate_costs(model: nn.Module, units: Sequence[Unit],
                   batch: dict) -> tuple:
    """Activation bytes of every unit and of the tail, for one batch.

    Returns:
        tuple: ``(unit_costs, stem_cost, tail_cost)``: the stem is what runs
        before the first unit (counted only if it has trainable parameters).
    """
    owner = {}
    for i, unit in enumerate(units):
        for m in unit.module.modules():
            owner[m] = i
    costs = [0] * len(units)
    stem, tail = [0], [0]
    started, done = [False], [False]
    first, last = units[0].module, units[-1].module

    def count(module, args, output):
        if next(module.children(), None) is not None:
            return  # leaves only
        outs = output if isinstance(output, (list, tuple)) else [output]
        ins = {a.data_ptr() for a in args if isinstance(a, torch.Tensor)}
        size = sum(o.numel() * o.element_size() for o in outs
                   if isinstance(o, torch.Tensor) and o.data_ptr() not in ins)
        if module in owner:
            costs[owner[module]] += size
        elif done[0]:
            tail[0] += size
        elif not started[0] and any(p.requires_grad
                                    for p in module.parameters()):
            stem[0] += size

    def start(module, args):
        started[0] = True

    def finish(module, args, output):
        done[0] = True

    handles = [m.register_forward_hook(count) for m in model.modules()]
    handles.append(first.register_forward_pre_hook(start))
    handles.append(last.register_forward_hook(finish))
    # Leave no trace: BN running stats and the RNG state are restored.
    buffers = {k: v.clone() for k, v in model.named_buffers()}
    rng = torch.get_rng_state()
    try:
        with torch.no_grad():
            data = model.data_preprocessor(copy.deepcopy(batch), True)
            model(**data, mode='loss')
    finally:
        for h in handles:
            h.remove()
        with torch.no_grad():
            for k, v in model.named_buffers():
                v.copy_(buffers[k])
        torch.set_rng_state(rng)
    return costs, stem[0], tail[0]


def balanced_ends(units: Sequence[Unit], costs: Sequence[int], stem: int,
                  tail: int, num_blocks: int,
                  eta_branches: int) -> List[int]:
    """Boundaries (index of each block's last unit) minimising the max block.

    Frozen units are not placed in any block's cost: they save nothing.
    """
    trainable = [i for i, u in enumerate(units) if u.trainable]
    n = len(trainable)
    cost = [costs[i] for i in trainable]
    prefix = [0]
    for c in cost:
        prefix.append(prefix[-1] + c)

    def block(a, b, last):  # trainable positions a..b-1
        extra = tail if last else eta_branches * cost[b]
        return prefix[b] - prefix[a] + extra + (stem if a == 0 else 0)

    inf = float('inf')
    # best[k][b]: minimal max cost of splitting positions 0..b-1 in k blocks
    best = [[inf] * (n + 1) for _ in range(num_blocks + 1)]
    cut = [[0] * (n + 1) for _ in range(num_blocks + 1)]
    best[0][0] = 0
    for k in range(1, num_blocks + 1):
        for b in range(k, n + 1):
            last = k == num_blocks
            if last and b != n:
                continue
            if not last and b == n:
                continue  # a non-last block needs a next unit
            for a in range(k - 1, b):
                value = max(best[k - 1][a], block(a, b, last))
                if value < best[k][b]:
                    best[k][b], cut[k][b] = value, a
    ends, b = [], n
    for k in range(num_blocks, 1, -1):
        b = cut[k][b]
        ends.append(trainable[b - 1])
    return sorted(ends)
