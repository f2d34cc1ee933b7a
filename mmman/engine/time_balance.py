"""``local_cfg.parallel.balance='time'``: blocks sized by measured compute.

In a block-parallel run the slowest block sets the pace (the last block,
with neck and heads, is often the heaviest; a block before it also runs its
eta and auxiliary head). The costs are measured on one process, on a copy
of the model split after every trainable unit with its own auxiliary nets
built as the run builds them, over a few training steps at the run's batch
and image size, timed phase by phase
(:func:`~mmman.engine.step_phases.step_phases`):

* ``forward[i]``: unit i's forward; its backward is taken as twice that;
* ``aux[i]``: the auxiliary phase at a boundary after unit i (eta and head,
  forward and backward) less unit i's backward;
* ``tail``: neck, heads, losses and their backward, less the last unit's
  backward;
* ``step``: the optimizer step, shared by parameter elements (a process
  steps its block's units, and its auxiliary nets with ``aux``);
* ``pre``: preprocessing and the stem, which every process runs;
* ``load``: loading a batch of the train dataset (:func:`measure_loading`),
  which block 1's process alone does.

Block ``a..b`` then costs ``pre + 3 * sum(forward[a..b]) + aux[b]`` (the tail
for the last block; ``load`` more for block 1) plus the step of its
parameters, and the boundaries
minimise the largest block (:func:`~mmman.local.balance.minmax_ends`). That
model only approximates (backward is not exactly twice the forward, and a
split after every unit runs differently), so the plan it picks is then
refined on the plan itself: each block's time is measured (its forward, its
auxiliary phase or the tail, its share of the step, ``pre``, ``load``) and
the slowest block gives one unit to a neighbour while that lowers it
(:func:`refine_ends`, a few measurements). Rank 0 measures and sends every
rank the plan, which is cached in the work dir: a resumed run keeps it.
"""
import copy
import functools
import statistics
import time
from typing import Callable, List, Optional, Tuple

import torch.nn as nn
from mmengine.dist import broadcast_object_list, get_rank
from mmengine.logging import print_log
from mmengine.registry import DATASETS, FUNCTIONS

from mmman.local.balance import minmax_ends
from mmman.local.partition import Unit, backbone_units
from mmman.local.plan_cache import BlockPlanCache, plan_key

from .step_phases import step_phases


def _median_phases(model: nn.Module, build_wrapper: Callable, batch: dict,
                   steps: int, **plan) -> Tuple[dict, list, list]:
    """Median seconds of each phase of ``steps`` training steps (after one
    warm-up) of a copy of ``model`` under ``build_wrapper(copy, **plan)``,
    and the parameter elements of each block and of its auxiliary nets."""
    clone = copy.deepcopy(model)
    try:
        wrapper = build_wrapper(clone, **plan)
        clone.train_step(copy.deepcopy(batch), wrapper)  # warm-up
        runs = [dict(step_phases(clone, wrapper, batch))
                for _ in range(steps)]
        numel = [sum(p.numel() for p in g) for g in wrapper.block_groups]
        aux_numel = [
            sum(p.numel() for p in block.parameters() if p.requires_grad)
            for block in wrapper.aux.blocks
        ] + [0]
    finally:
        del clone
    med = {tag: statistics.median(r.get(tag, 0.0) for r in runs)
           for tag in runs[0]}
    return med, numel, aux_numel


def measure_unit_times(model: nn.Module, build_wrapper: Callable,
                       batch: dict, steps: int = 3) -> Tuple[dict,
                                                            List[Unit]]:
    """The time costs of ``model`` (median of ``steps`` steps after one
    warm-up) and its trainable units. ``build_wrapper(model, num_blocks)``
    builds the run's optim wrapper for ``model`` (copies taken)."""
    units, _ = backbone_units(model)
    trainable = [i for i, u in enumerate(units) if u.trainable]
    n = len(trainable)
    # K = n: block i holds unit i (the last also the neck and heads) and,
    # but the last, the auxiliary nets at the boundary after it
    med, numel, aux_numel = _median_phases(model, build_wrapper, batch,
                                           steps, num_blocks=n)
    forward = [med.get(f'block {i + 1}', 0.0) for i in range(n)]
    per_element = med['step'] / max(sum(numel), 1)
    times = dict(
        pre=med['preprocess + stem'],
        forward=forward,
        aux=[max(0.0, med.get(f'aux {i + 1}', 0.0) - 2 * forward[i]) +
             per_element * aux_numel[i] for i in range(n - 1)],
        tail=max(0.0, med['tail forward'] + med['tail backward'] -
                 2 * forward[-1]),
        step=[per_element * (m - a) for m, a in zip(numel, aux_numel)])
    return times, [units[i] for i in trainable]


def time_balanced_ends(times: dict, num_blocks: int) -> Tuple[List[int],
                                                            List[float]]:
    """Positions (in the trainable units) of the blocks' last units, and
    each block's predicted seconds per step."""
    prefix = [0.0]
    for f, s in zip(times['forward'], times['step']):
        prefix.append(prefix[-1] + 3 * f + s)

    def block(a, b, k, last):
        extra = times['tail'] if last else times['aux'][b - 1]
        if a == 0:  # block 1's process also loads the batches
            extra += times.get('load', 0.0)
        return times['pre'] + prefix[b] - prefix[a] + extra

    ends = minmax_ends(len(times['forward']), num_blocks, block)
    starts = [0] + [e + 1 for e in ends]
    stops = [e + 1 for e in ends] + [len(times['forward'])]
    return ends, [
        block(a, b, k, k == num_blocks - 1)
        for k, (a, b) in enumerate(zip(starts, stops))
    ]


def measure_block_times(model: nn.Module, build_wrapper: Callable,
                        batch: dict, boundaries: List[str],
                        steps: int = 3) -> List[float]:
    """Seconds per step each block of the plan ending at ``boundaries``
    would take on its own process (measured in one, median of ``steps``)."""
    med, numel, _ = _median_phases(model, build_wrapper, batch, steps,
                                   boundaries=list(boundaries))
    k_last = len(boundaries)
    found = []
    for k in range(k_last + 1):
        own = med.get(f'block {k + 1}', 0.0) + (
            med['tail forward'] + med['tail backward'] if k == k_last else
            med.get(f'aux {k + 1}', 0.0))
        found.append(med['preprocess + stem'] + own +
                     med['step'] * numel[k] / max(sum(numel), 1))
    return found


def measure_loading(loader: dict, batch_size: int,
                    batches: int = 3) -> float:
    """Median seconds to load one batch of ``loader['dataset']`` (read,
    transformed, collated with ``loader['collate_fn']``) after a warm-up
    batch: what block 1's process does besides its block."""
    dataset = loader['dataset']
    if isinstance(dataset, dict):
        dataset = DATASETS.build(dataset)
    collate = dict(loader.get('collate_fn') or dict(type='pseudo_collate'))
    collate = functools.partial(FUNCTIONS.get(collate.pop('type')),
                                **collate)
    found = []
    for b in range(batches + 1):
        start = time.perf_counter()
        collate([dataset[(b * batch_size + i) % len(dataset)]
                 for i in range(batch_size)])
        found.append(time.perf_counter() - start)
    return statistics.median(found[1:])


def refine_ends(ends: List[int], n: int, measure: Callable,
                budget: int = 6) -> Tuple[List[int], List[float]]:
    """Move one boundary by one position at a time, away from the slowest
    block, while that lowers the slowest block (at most ``budget``
    measurements). ``measure(ends) -> seconds per block``."""
    best, times = list(ends), measure(ends)
    tried = {tuple(best)}
    while budget > 0:
        slow = max(range(len(times)), key=times.__getitem__)
        candidates = []
        if slow < len(best):  # it gives its last unit to the next block
            candidates.append(best[:slow] + [best[slow] - 1] +
                              best[slow + 1:])
        if slow > 0:  # it gives its first unit to the block before
            candidates.append(best[:slow - 1] + [best[slow - 1] + 1] +
                              best[slow:])
        improved = False
        for ends_ in candidates:
            valid = all(0 <= e < n - 1 for e in ends_) and all(
                a < b for a, b in zip(ends_, ends_[1:]))
            if not valid or tuple(ends_) in tried or budget <= 0:
                continue
            tried.add(tuple(ends_))
            budget -= 1
            found = measure(ends_)
            if max(found) < max(times):
                best, times, improved = ends_, found, True
                break
        if not improved:
            break
    return best, times


def plan_for_time(model: nn.Module, num_blocks: int, build_wrapper: Callable,
                  batch_fn: Callable, img_scale, batch_size: int,
                  cache_dir=None, cache_info=(),
                  load_fn: Optional[Callable] = None) -> List[str]:
    """Names of the blocks' last units, balanced by measured time.
    ``load_fn()``: seconds block 1's process spends loading a batch (added
    to block 1). A collective: rank 0 measures (or reads the cache), every
    rank gets its answer."""
    cache = BlockPlanCache(cache_dir) if cache_dir else None
    key = plan_key(model, img_scale, num_blocks, 0, 'time',
                   extra=[batch_size, *cache_info]) if cache else None
    found = [None]
    if get_rank() == 0:
        names = cache.get(key) if cache else None
        if names is None:
            batch = batch_fn(batch_size, img_scale)
            times, trainable = measure_unit_times(model, build_wrapper, batch)
            load = times['load'] = load_fn() if load_fn else 0.0

            def measure(ends):
                found = measure_block_times(model, build_wrapper, batch,
                                            [trainable[i].name for i in ends])
                return [found[0] + load] + found[1:]

            ends, _ = time_balanced_ends(times, num_blocks)
            ends, seconds = refine_ends(ends, len(trainable), measure)
            names = [trainable[e].name for e in ends]
            print_log(
                f'local learning: time-balanced blocks at {tuple(img_scale)}'
                f' x {batch_size}: ending at {names}; measured seconds per '
                f'step of each block {[round(s, 4) for s in seconds]} (block '
                f'1 with {load:.4f} s loading a batch)', logger='current')
            if cache:
                cache.put(key, names, img_scale=list(img_scale),
                          num_blocks=num_blocks, by='time',
                          model=type(model).__name__)
        found = [names]
    broadcast_object_list(found, src=0)
    return list(found[0])
