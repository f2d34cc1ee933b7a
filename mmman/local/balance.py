"""Memory-balanced block boundaries.

Splitting K blocks by equal unit count leaves them unbalanced: high-resolution
early units cost far more activation memory than late ones, and the last
block also carries neck and heads. Here the bytes every unit, the stem and
the tail (neck, heads, losses) save for backward are measured on one image
at two reduced scales and extrapolated to the training size (see
:func:`estimate_costs`). Boundaries are then chosen to minimise the largest
block, where a block's cost is its units, plus the eta branches that run the
next unit on its output (MAN: 2), plus, for the last block, the tail. A block
whose units are checkpointed (``local_cfg.checkpoint``) keeps only their
inputs and recomputes one unit at a time in its backward: its cost is those
inputs plus the larger of the eta branches (the tail) and its largest unit.
"""
import copy
from typing import List, Optional, Sequence

import torch
import torch.nn as nn

from mmman.utils.memory import PhaseMeter
from mmman.utils.recompute import restored_buffers
from .partition import Unit


def resolve_balance_cfg(balance) -> Optional[dict]:
    """``local_cfg.balance`` as a dict of settings, or None for the even split.

    ``True`` means ``dict()`` and ``False`` means ``None``. A flag replaces
    either default when MMEngine merges configs or ``--cfg-options`` (a dict
    cannot be merged into a ``None`` base without ``_delete_=True``).
    """
    if balance is None or balance is False:
        return None
    if balance is True:
        return {}
    if isinstance(balance, dict):
        return dict(balance)
    raise TypeError('local learning: balance must be a dict, True, False or '
                    f'None, not {balance!r}.')


def track_unit_phases(meter: PhaseMeter, units: Sequence[Unit]) -> list:
    """Make ``meter`` enter phase ``i`` when unit ``i`` starts and ``'tail'``
    after the last unit. Returns the hook handles."""
    handles = [
        unit.module.register_forward_pre_hook(
            lambda m, a, i=i: meter.enter(i)) for i, unit in enumerate(units)
    ]
    handles.append(units[-1].module.register_forward_hook(
        lambda m, a, o: meter.enter('tail')))
    return handles


def _input_bytes(args, kwargs) -> int:
    """Bytes of the tensor storages a unit is called with (each once)."""
    storages = {}
    for value in list(args) + list(kwargs.values()):
        if isinstance(value, torch.Tensor):
            storage = value.untyped_storage()
            storages[storage.data_ptr()] = storage.nbytes()
    return sum(storages.values())


def _phase_growth(model: nn.Module, units: Sequence[Unit],
                  batch: dict) -> dict:
    """Saved-bytes growth of every phase; ``('in', i)``: the bytes unit i is
    called with (what a checkpoint of it keeps)."""
    meter = PhaseMeter()
    handles = track_unit_phases(meter, units)
    for i, unit in enumerate(units):
        handles.append(unit.module.register_forward_pre_hook(
            lambda m, a, kw, i=i: meter.growth.__setitem__(
                ('in', i), _input_bytes(a, kw)), with_kwargs=True))
    try:
        with meter:
            data = model.data_preprocessor(copy.deepcopy(batch), True)
            model(**data, mode='loss')  # graph freed when this returns
    finally:
        for h in handles:
            h.remove()
    return meter.growth


def reduced_sizes(img_scale, fractions=(0.5, 0.25)) -> list:
    """``img_scale`` at ``fractions`` of its side, in multiples of 32."""
    return [tuple(max(32, round(s * fraction / 32) * 32) for s in img_scale)
            for fraction in fractions]


def sample_growth(model: nn.Module, growth_fn, make_batch, img_scale,
                  fractions=(0.5, 0.25)) -> list:
    """``[(area, growth_fn(batch)), ...]`` at the reduced scales of
    ``img_scale``, leaving no trace: ``model``'s buffers (BN running
    statistics) and the RNG state are restored."""
    with restored_buffers(model), torch.random.fork_rng(devices=[]):
        return [(size[0] * size[1], growth_fn(make_batch(size)))
                for size in reduced_sizes(img_scale, fractions)]


def extrapolate(samples, img_scale, phase) -> int:
    """Bytes of ``phase`` at ``img_scale`` from two measured samples
    ``[(area, {phase: bytes}), ...]``: ``bytes = a * area + b``."""
    (a1, g1), (a2, g2) = samples
    full = img_scale[0] * img_scale[1]
    y1, y2 = g1.get(phase, 0), g2.get(phase, 0)
    if a1 == a2:  # tiny inputs: both scales rounded to one size
        return round(y1 * full / a1)
    slope = (y1 - y2) / (a1 - a2)
    return max(0, round(y1 + slope * (full - a1)))


def estimate_costs(model: nn.Module, units: Sequence[Unit], make_batch,
                   img_scale, fractions=(0.5, 0.25),
                   inputs: bool = False) -> tuple:
    """Saved-activation bytes of every unit, the stem and the tail.

    Measured, not guessed: a batch is run forward with autograd at two
    reduced scales (``fractions`` of the side), the bytes each phase saves
    are recorded, and ``bytes = a * area + b`` is fitted per phase and
    evaluated at ``img_scale``. Convolutions scale with area exactly; heads
    working on a fixed number of RoIs contribute the constant. With a batch
    of 2 and the default fractions the estimate needs at most 1/4 of the
    saved activations of a 2-image E2E step.

    Args:
        make_batch (callable): ``(height, width) -> batch`` (2 images: batch
            statistics of a 1x1 pooled map need more than one value).
        inputs (bool): Also return the bytes each unit is called with.

    Returns:
        tuple: ``(unit_costs, stem_cost, tail_cost)``, and ``unit_inputs``
        with ``inputs``.
    """
    samples = sample_growth(model, lambda b: _phase_growth(model, units, b),
                            make_batch, img_scale, fractions)

    def fit(phase) -> int:
        return extrapolate(samples, img_scale, phase)

    found = ([fit(i) for i in range(len(units))], fit('stem'), fit('tail'))
    if inputs:
        found += ([fit(('in', i)) for i in range(len(units))], )
    return found


def balanced_ends(units: Sequence[Unit],
                  costs: Sequence[int],
                  stem: int,
                  tail: int,
                  num_blocks: int,
                  eta_branches: int,
                  inputs: Optional[Sequence[int]] = None,
                  checkpointed: Sequence[int] = ()) -> List[int]:
    """Boundaries (index of each block's last unit) minimising the max block.

    Frozen units are not placed in any block's cost: they save nothing.
    ``checkpointed`` (0-based blocks) are costed as checkpointed, from the
    bytes each unit is called with (``inputs``).
    """
    trainable = [i for i, u in enumerate(units) if u.trainable]
    n = len(trainable)
    cost = [costs[i] for i in trainable]
    prefix, kept = [0], [0]
    for j, c in enumerate(cost):
        prefix.append(prefix[-1] + c)
        kept.append(kept[-1] + (inputs[trainable[j]] if checkpointed else 0))

    def block(a, b, k, last):  # trainable positions a..b-1 in block k
        extra = tail if last else eta_branches * cost[b]
        base = stem if a == 0 else 0
        if k in checkpointed:
            return base + kept[b] - kept[a] + max(extra, max(cost[a:b]))
        return base + prefix[b] - prefix[a] + extra

    return [trainable[b] for b in minmax_ends(n, num_blocks, block)]


def minmax_ends(n: int, num_blocks: int, block) -> List[int]:
    """Last positions of the first ``num_blocks - 1`` blocks of ``n``
    positions, minimising the largest ``block(a, b, k, last)`` (the cost
    of positions a..b-1 as block k, ``last`` for the last block; every
    block but the last needs a position after it)."""
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
                value = max(best[k - 1][a], block(a, b, k - 1, last))
                if value < best[k][b]:
                    best[k][b], cut[k][b] = value, a
    ends, b = [], n
    for k in range(num_blocks, 1, -1):
        b = cut[k][b]
        ends.append(b - 1)
    return sorted(ends)
