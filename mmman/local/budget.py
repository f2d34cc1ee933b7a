"""The block plan that fits a memory budget (``local_cfg.memory_budget``).

Given what every backbone unit costs at the training scale (saved
activations, the bytes it is called with, the auxiliary phase at each
possible boundary, the auxiliary nets' own parameters and optimizer state),
:func:`fit_budget` picks the fewest blocks whose predicted peak fits the
budget, and of those the plan that computes least on top of E2E (eta at
its boundaries, recomputation in checkpointed blocks):

    peak = static + sum(aux_static at the boundaries) + max over blocks of
           the block's saved bytes while it (and its auxiliary phase) runs

A block's saved bytes are its units' (plus the stem for the first) and its
auxiliary phase (eta + head + their local backward; the tail for the last
block). Checkpointed, its units keep only their inputs: the auxiliary phase
runs on top of all of them, then the backward recomputes unit j on top of
the inputs before it.
"""
import re
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple

from .partition import PartitionError

_UNITS = {'': 1, 'B': 1, 'K': 10**3, 'KB': 10**3, 'M': 10**6, 'MB': 10**6,
          'G': 10**9, 'GB': 10**9, 'KIB': 2**10, 'MIB': 2**20,
          'GIB': 2**30, 'TIB': 2**40, 'TB': 10**12}


def parse_bytes(value) -> int:
    """``'4GiB'``, ``'512 MiB'``, ``'1.5GB'`` or a number of bytes."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if value <= 0:
            raise ValueError(f'memory_budget must be positive, not {value}.')
        return int(value)
    match = re.fullmatch(r'\s*([0-9]*\.?[0-9]+)\s*([A-Za-z]*)\s*',
                         str(value))
    unit = match.group(2).upper() if match else None
    if match is None or unit not in _UNITS or float(match.group(1)) <= 0:
        raise ValueError(
            f'local_cfg.memory_budget: cannot read {value!r}; give bytes or '
            "a size such as '4GiB', '512MiB' or '1.5GB'.")
    return int(float(match.group(1)) * _UNITS[unit])


def resolve_budget_cfg(value) -> Optional[dict]:
    """``local_cfg.memory_budget`` as ``dict(size=bytes, img_scale,
    cache_dir)``, or None. A size alone (``'4GiB'``) or a dict with
    ``size`` and optionally ``img_scale`` (H, W) and ``cache_dir``."""
    if value is None:
        return None
    if not isinstance(value, dict):
        value = dict(size=value)
    unknown = set(value) - {'size', 'img_scale', 'cache_dir'}
    if unknown or 'size' not in value:
        raise ValueError(
            'local_cfg.memory_budget: give a size (\'4GiB\') or dict(size='
            f', img_scale=(H, W), cache_dir=); got {dict(value)!r}.')
    return dict(size=parse_bytes(value['size']),
                img_scale=value.get('img_scale'),
                cache_dir=value.get('cache_dir'))


def format_bytes(num: float) -> str:
    return f'{num / 2**20:.0f} MiB'


@dataclass
class BudgetCosts:
    """Bytes at the training scale, per trainable unit position ``j``.

    Attributes:
        units: saved activations of unit j.
        inputs: bytes unit j is called with (what a checkpoint keeps).
        aux: the auxiliary phase's own growth when a block ends before unit
            j (eta copies of unit j and the head on their output); aux[0]
            is unused.
        aux_static: parameters, gradients and optimizer state of the
            auxiliary nets of that boundary.
        stem, tail: saved bytes before the first unit and after the last
            (neck, heads, losses).
        static: the model's parameters, gradients and optimizer state.
        tail_checkpointed: the tail when the last block is checkpointed
            (neck and decode head recomputed); defaults to ``tail``.
        forward_flops: FLOPs of unit j's forward (what checkpointing it
            computes again); None when not measured.
        eta_flops: FLOPs of eta at a boundary before unit j (forward,
            backward, recomputation); eta_flops[0] is unused.
        tail_flops: FLOPs of the tail's forward.
        held_before: backbone outputs (the neck's inputs) returned before
            unit j that the units after them save in an E2E forward: with
            the last block starting at j > 0, an earlier block frees them
            and the tail saves them again (0 for j = 0).
    """
    units: List[int]
    inputs: List[int]
    aux: List[int]
    aux_static: List[int]
    stem: int
    tail: int
    static: int
    tail_checkpointed: Optional[int] = None
    forward_flops: Optional[List[int]] = None
    eta_flops: Optional[List[int]] = None
    tail_flops: int = 0
    held_before: Optional[List[int]] = None

    def to_dict(self) -> dict:
        return dict(vars(self))


@dataclass
class BudgetPlan:
    """Blocks as the positions of their last trainable unit, the
    checkpointed blocks (0-based), the predicted peak bytes and the FLOPs
    the plan adds to an E2E step (None where not measured)."""
    ends: List[int]
    checkpointed: List[int]
    predicted: int
    activations: int = 0
    blocks: List[int] = field(default_factory=list)
    extra_flops: Optional[int] = None

    @property
    def num_blocks(self) -> int:
        return len(self.ends) + 1


class BudgetError(PartitionError):
    """No plan fits the memory budget; ``smallest`` is the plan with the
    smallest predicted peak."""

    def __init__(self, message: str, smallest: Optional[BudgetPlan] = None):
        super().__init__(message)
        self.smallest = smallest


def _block_cost(c: BudgetCosts, a: int, b: int, last: bool,
                checkpointed: bool) -> int:
    extra = c.tail if last else c.aux[b]
    if last and checkpointed and c.tail_checkpointed is not None:
        extra = c.tail_checkpointed
    if last and c.held_before is not None:
        extra += c.held_before[a]
    base = c.stem if a == 0 else 0
    if not checkpointed:
        return base + sum(c.units[a:b]) + extra
    # every unit's input is kept; the auxiliary phase (tail) runs on top of
    # them all, then the backward recomputes unit j while only the inputs
    # before it are still held (unit j's own cost includes its input)
    kept, recompute = 0, 0
    for j in range(a, b):
        recompute = max(recompute, kept + c.units[j])
        kept += c.inputs[j]
    return base + max(kept + extra, recompute)


def _extra(c: BudgetCosts, a: int, b: int, last: bool,
           checkpointed: bool) -> int:
    """What block a..b-1 adds to an E2E step: the eta after it, and with
    checkpointing its units' forward again (the tail's too, for the last
    block). In FLOPs; without measured FLOPs, 1 per checkpointed block."""
    if c.forward_flops is None:
        return int(checkpointed)
    extra = 0 if last else c.eta_flops[b]
    if checkpointed:
        extra += sum(c.forward_flops[a:b]) + (c.tail_flops if last else 0)
    return extra


def _split(c: BudgetCosts, k: int, cap: Optional[float]):
    """Split the n positions into k blocks.

    With ``cap``: every block's cost stays within it and the plan adds the
    least compute (eta at its boundaries, recomputation in checkpointed
    blocks: :func:`_extra`), then has the smallest largest block. Without:
    the smallest largest block, then the least compute. Returns ``(key,
    ends, checkpointed)`` or None.
    """
    n = len(c.units)
    inf = (float('inf'), float('inf'))
    best = [[inf] * (n + 1) for _ in range(k + 1)]
    back = [[None] * (n + 1) for _ in range(k + 1)]
    best[0][0] = (0, 0)
    for blk in range(1, k + 1):
        last = blk == k
        for b in range(blk, n + 1):
            if last != (b == n):
                continue  # the last block ends at n; no other one does
            for a in range(blk - 1, b):
                prev = best[blk - 1][a]
                if prev == inf:
                    continue
                for ckpt in (False, True):
                    cost = _block_cost(c, a, b, last, ckpt)
                    extra = _extra(c, a, b, last, ckpt)
                    if cap is not None:
                        if cost > cap:
                            continue
                        key = (prev[0] + extra, max(prev[1], cost))
                    else:
                        key = (max(prev[0], cost), prev[1] + extra)
                    if key < best[blk][b]:
                        best[blk][b] = key
                        back[blk][b] = (a, ckpt)
    if best[k][n] == inf:
        return None
    ends, ckpts, b = [], [], n
    for blk in range(k, 0, -1):
        a, ckpt = back[blk][b]
        if ckpt:
            ckpts.append(blk - 1)
        if blk < k:
            ends.append(b - 1)
        b = a
    return best[k][n], sorted(ends), sorted(ckpts)


def _plan(c: BudgetCosts, ends: Sequence[int],
          checkpointed: Sequence[int]) -> BudgetPlan:
    starts = [0] + [e + 1 for e in ends]
    stops = [e + 1 for e in ends] + [len(c.units)]
    blocks = [
        _block_cost(c, a, b, k == len(starts) - 1, k in checkpointed)
        for k, (a, b) in enumerate(zip(starts, stops))
    ]
    static = c.static + sum(c.aux_static[e + 1] for e in ends)
    extra = None if c.forward_flops is None else sum(
        _extra(c, a, b, k == len(starts) - 1, k in checkpointed)
        for k, (a, b) in enumerate(zip(starts, stops)))
    return BudgetPlan(list(ends), list(checkpointed),
                      static + max(blocks), max(blocks), blocks, extra)


def _cheapest(costs: BudgetCosts, k: int, budget: Optional[int] = None,
              saved: Optional[int] = None) -> Optional[BudgetPlan]:
    """The k-block plan computing least with its predicted peak within
    ``budget``, or its largest block within ``saved``; None if none."""
    if saved is None:
        # the auxiliary nets' static bytes depend on the boundaries: cap
        # the blocks as if every boundary had the largest
        cap = budget - costs.static - (k - 1) * max(costs.aux_static or [0])
    else:
        cap = saved
    found = _split(costs, k, cap) if cap > 0 else None
    if found is None:
        return None
    plan = _plan(costs, found[1], found[2])
    return plan if budget is None or plan.predicted <= budget else None


def fit_budget(costs: BudgetCosts, budget: int,
               max_blocks: Optional[int] = None) -> BudgetPlan:
    """The fewest blocks predicted to fit ``budget`` bytes, then the plan of
    them that adds the least compute: eta at cheap boundaries, the fewest
    recomputed units (without measured FLOPs: the fewest checkpointed
    blocks).

    Raises:
        BudgetError: when no plan fits; the message gives the smallest
            peak any plan reaches and that plan.
    """
    n = len(costs.units)
    top = min(n, max_blocks or n)
    smallest = []
    for k in range(1, top + 1):
        plan = _cheapest(costs, k, budget=budget)
        if plan is not None:
            return plan
        # the smallest largest block of k, checkpointed where that helps
        plan = _plan(costs, *_split(costs, k, None)[1:])
        if plan.predicted <= budget:
            return plan
        smallest.append(plan)
    smallest = min(smallest, key=lambda p: p.predicted)
    raise BudgetError(
        f'local learning: no plan fits memory_budget={format_bytes(budget)}'
        f' (saved activations + parameters, gradients and optimizer state). '
        f'The smallest predicted peak is {format_bytes(smallest.predicted)}'
        f', with {smallest.num_blocks} blocks, '
        f'{len(smallest.checkpointed)} of them checkpointed '
        f'(parameters, gradients and optimizer state alone: '
        f'{format_bytes(smallest.predicted - smallest.activations)}). '
        'Raise the budget, or lower the batch or image size.', smallest)


def cheapest_plans(costs: BudgetCosts, budget: Optional[int] = None,
                   saved: Optional[int] = None) -> List[BudgetPlan]:
    """For every number of blocks, the plan that computes least on top of
    E2E while its predicted peak stays within ``budget`` bytes, or its
    largest block (saved activations) within ``saved``; numbers of blocks
    with no such plan are left out."""
    if (budget is None) == (saved is None):
        raise ValueError('give budget or saved')
    plans = [_cheapest(costs, k, budget, saved)
             for k in range(1, len(costs.units) + 1)]
    return [plan for plan in plans if plan is not None]


def predicted_split(costs: BudgetCosts, ends: Sequence[int],
                    checkpointed: Sequence[int] = ()) -> Tuple[int, list]:
    """Predicted peak and per-block bytes of a given split."""
    plan = _plan(costs, ends, checkpointed)
    return plan.predicted, plan.blocks
