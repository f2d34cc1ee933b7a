"""``local_cfg.memory_budget``: measure the config, choose the plan.

The costs :func:`~mmman.local.budget.fit_budget` needs are measured on the
model itself at two reduced scales of the training size and extrapolated
(as the balanced split does):

* each unit's saved activations and inputs, the stem and the tail: one
  forward of the model (:func:`~mmman.local.balance.estimate_costs`);
* the auxiliary phase at every possible boundary, and the auxiliary nets'
  parameters, gradients and optimizer state: one training step of a copy of
  the model split after every trainable unit, its own auxiliary nets built
  as the run builds them;
* the model's parameters, gradients and optimizer state: that step's
  optimizer;
* the tail when the last block is checkpointed (its neck and decode head
  recomputed): one more forward of the model;
* what each unit's forward and each boundary's eta compute (FLOPs), to
  choose the cheapest of the plans that fit: one more forward;
* the backbone outputs the neck saves again when earlier blocks have freed
  them (an E2E forward counts them with the units after them): one more
  forward.

The model itself is left as it was (a copy trains; buffers and the RNG are
restored). The chosen plan is cached in the work dir like a balanced one.
"""
import copy
from contextlib import contextmanager
from typing import Callable, Dict, List, Tuple

import torch
import torch.nn as nn
from mmengine.logging import print_log

from mmman.local.balance import (estimate_costs, extrapolate, sample_growth,
                                 track_unit_phases)
from mmman.local.budget import (BudgetCosts, BudgetPlan, fit_budget,
                                format_bytes)
from mmman.local.compute import measure_flops
from mmman.local.man import MomentumAuxNet
from mmman.local.partition import backbone_units
from mmman.local.plan_cache import BlockPlanCache, plan_key
from mmman.local.unit_trace import flat_tensors
from mmman.utils import PhaseMeter
from mmman.utils.recompute import tail_modules


PLAN_KEYS = ('boundaries', 'checkpoint', 'num_blocks', 'predicted', 'blocks',
             'static')


def _bytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def _training_bytes(params, optimizer) -> int:
    """Parameters, the gradients of the trainable ones and their optimizer
    state, as one training step leaves them."""
    params = list(params)
    state = optimizer.state
    return (_bytes(params) + _bytes(p for p in params if p.requires_grad) +
            _bytes(t for p in params for t in state.get(p, {}).values()
                   if isinstance(t, torch.Tensor)))


def aux_phase_growth(model: nn.Module, wrapper, batch: dict) -> Dict:
    """Growth of saved bytes of each phase of one local training step:
    the stem, every unit, ``'tail'`` and ``('aux', k)``, block k's
    auxiliary phase (eta, head and their local backward, run in the
    pre-hook of block k+1's first unit while block k is alive)."""
    meter, plan = PhaseMeter(), wrapper.plan
    handles = track_unit_phases(meter, plan.units)
    for k in range(plan.num_blocks - 1):
        # registered before the wrapper's pre-hook (armed in the step): the
        # aux phase starts before it and ends when the unit's layers run
        i = plan.ends[k] + 1
        unit = plan.units[i].module
        handles.append(unit.register_forward_pre_hook(
            lambda m, a, k=k: meter.enter(('aux', k))))
        handles += [
            child.register_forward_pre_hook(lambda m, a, i=i: meter.enter(i))
            for child in unit.children()
        ]
    try:
        with meter:
            model.train_step(copy.deepcopy(batch), wrapper)
    finally:
        for h in handles:
            h.remove()
    return meter


@contextmanager
def _phases_of(modules, meter: PhaseMeter):
    """Phase ``('tail', i)`` while ``modules[i].forward`` runs (shadowed:
    MMSeg's decode heads call ``self.forward``, which no hook sees)."""
    for i, module in enumerate(modules):

        def forward(*args, _forward=module.forward, _i=i, **kwargs):
            meter.enter(('tail', _i))
            try:
                return _forward(*args, **kwargs)
            finally:
                meter.enter('after')

        module.forward = forward
    try:
        yield
    finally:
        for module in modules:
            del module.forward


def _tail_growth(model: nn.Module, units, batch: dict) -> dict:
    """Saved-bytes growth of the tail with the last block checkpointed
    (``'tail'``: what forward keeps with the neck and decode head
    checkpointed) and of each of those modules run plainly
    (``('tail', i)``: what its recomputation holds)."""
    from mmman.engine.unit_checkpoint import checkpointed_units
    tails = tail_modules(model)
    found = {}
    for checkpoint in (True, False):
        meter = PhaseMeter()
        handles = track_unit_phases(meter, units)
        try:
            with meter, checkpointed_units(tails if checkpoint else []), \
                    _phases_of(tails if not checkpoint else [], meter):
                data = model.data_preprocessor(copy.deepcopy(batch), True)
                model(**data, mode='loss')
        finally:
            for h in handles:
                h.remove()
        if checkpoint:
            found['tail'] = meter.growth.get('tail', 0)
        else:
            found.update({k: v for k, v in meter.growth.items()
                          if isinstance(k, tuple)})
    return found


def checkpointed_tail(model: nn.Module, units, batch_fn: Callable,
                      img_scale) -> int:
    """The tail's saved bytes when the last block is checkpointed: the
    larger of what its forward keeps and the largest recomputation of the
    neck or decode head (measured at two reduced scales; buffers and RNG
    restored)."""
    tails = tail_modules(model)
    samples = sample_growth(model, lambda b: _tail_growth(model, units, b),
                            batch_fn, img_scale)
    # the backward frees the heads' saved tensors before it reaches the
    # neck or decode head and recomputes it: the larger of the two
    return max([extrapolate(samples, img_scale, 'tail')] + [
        extrapolate(samples, img_scale, ('tail', i))
        for i in range(len(tails))
    ])


class _SavingPhases(PhaseMeter):
    """:class:`PhaseMeter` that also records, per storage, the phases that
    saved it, in order."""

    def __init__(self):
        super().__init__()
        self.phases = {}

    def _pack(self, tensor: torch.Tensor):
        key = (tensor.device, tensor.untyped_storage().data_ptr())
        self.phases.setdefault(key, []).append(self.phase)
        return super()._pack(tensor)


def held_growth(model: nn.Module, units, output_units, batch: dict) -> dict:
    """``('held', i)``: bytes of the backbone output unit ``i`` returns
    when a unit after it saves it first in an E2E forward and the tail
    (neck, heads) saves it too. In a local step that unit's block frees it
    first, and the tail, in the last block, saves it again: bytes the E2E
    tail does not count."""
    meter, outputs = _SavingPhases(), {}
    handles = track_unit_phases(meter, units)
    for i in set(output_units):
        handles.append(units[i].module.register_forward_hook(
            lambda m, a, out, i=i: outputs.__setitem__(
                i, flat_tensors(out)[units[i].out_index].untyped_storage())))
    try:
        with meter:
            data = model.data_preprocessor(copy.deepcopy(batch), True)
            model(**data, mode='loss')
    finally:
        for h in handles:
            h.remove()
    found = {}
    for i, storage in outputs.items():
        phases = meter.phases.get((storage.device, storage.data_ptr()), [])
        if phases and phases[0] != 'tail' and 'tail' in phases:
            found[('held', i)] = storage.nbytes()
    return found


def measure_budget_costs(model: nn.Module, build_wrapper: Callable,
                         batch_fn: Callable, img_scale) -> Tuple[
                             BudgetCosts, List]:
    """The costs of ``model`` at ``img_scale``, per trainable unit.

    Args:
        build_wrapper (callable): ``(model, num_blocks) -> optim wrapper``
            with the run's method, objective and optimizer.
        batch_fn (callable): ``(height, width) -> batch``.

    Returns:
        tuple: the :class:`BudgetCosts` and the trainable units.
    """
    units, output_units = backbone_units(model)
    trainable = [i for i, u in enumerate(units) if u.trainable]
    costs, stem, tail, inputs = estimate_costs(
        model, units, batch_fn, img_scale, inputs=True)
    samples = sample_growth(
        model, lambda b: held_growth(model, units, output_units, b),
        batch_fn, img_scale)
    held = [extrapolate(samples, img_scale, ('held', i))
            for i in range(len(units))]
    # frozen units before the first trainable one save nothing; count any
    # bytes they do save with the stem
    stem += sum(c for i, c in enumerate(costs)
                if i < trainable[0] and not units[i].trainable)
    tail_ckpt = min(tail, checkpointed_tail(model, units, batch_fn,
                                            img_scale))

    clone = copy.deepcopy(model)
    try:
        wrapper = build_wrapper(clone, len(trainable))
        samples = sample_growth(
            clone, lambda b: aux_phase_growth(clone, wrapper, b).growth,
            batch_fn, img_scale)
        aux = [0] + [
            extrapolate(samples, img_scale, ('aux', k))
            for k in range(len(trainable) - 1)
        ]
        optimizer = wrapper.optimizer
        blocks = getattr(wrapper.aux, 'blocks', [])
        aux_static = [0] + [
            _training_bytes(block.parameters(), optimizer)
            for block in blocks
        ]
        static = _training_bytes(clone.parameters(), optimizer)
        static += _bytes(clone.buffers())
        flops = measure_flops(
            model, units, {
                trainable[k + 1]: block.eta
                for k, block in enumerate(blocks)
                if isinstance(block.eta, MomentumAuxNet)
            }, batch_fn, img_scale)
    finally:
        del clone
    return BudgetCosts(
        units=[costs[i] for i in trainable],
        inputs=[inputs[i] for i in trainable],
        aux=aux,
        aux_static=aux_static,
        stem=stem,
        tail=tail,
        tail_checkpointed=tail_ckpt,
        static=static,
        forward_flops=[flops['forward'][i] for i in trainable],
        eta_flops=[0] + [flops['eta'][i] for i in trainable[1:]],
        tail_flops=flops['tail'],
        # a last block starting at the first trainable unit is the model:
        # nothing before it was freed
        held_before=[0] + [sum(held[:i]) for i in trainable[1:]]), [
            units[i] for i in trainable]


def _compute_note(found: dict) -> str:
    flops = found.get('extra_flops')  # absent from plans cached before
    if flops is None:
        return ''
    return (f'; eta and recomputation add {flops / 1e9:.1f} GFLOP per step'
            ' (the least of the plans with this many blocks that fit)')


def plan_for_budget(model: nn.Module, budget: int, img_scale,
                    build_wrapper: Callable, batch_fn: Callable,
                    cache_dir=None, cache_info=()) -> dict:
    """The plan that fits ``budget`` bytes: ``boundaries`` (unit names of
    the blocks' last units), ``checkpoint`` (1-based blocks),
    ``num_blocks`` and ``predicted`` (bytes); cached in ``cache_dir``.

    Raises:
        BudgetError: nothing fits (the message gives the smallest peak).
    """
    cache = BlockPlanCache(cache_dir) if cache_dir else None
    key = plan_key(model, img_scale, 0, 0, 'budget',
                   extra=[budget, *cache_info]) if cache else None
    found = cache.get_entry(key) if cache else None
    if found is not None:
        found = dict({k: found[k] for k in PLAN_KEYS},
                     extra_flops=found.get('extra_flops'))
    else:
        costs, trainable = measure_budget_costs(model, build_wrapper,
                                                batch_fn, img_scale)
        plan: BudgetPlan = fit_budget(costs, budget)
        found = dict(
            boundaries=[trainable[e].name for e in plan.ends],
            checkpoint=[k + 1 for k in plan.checkpointed],
            num_blocks=plan.num_blocks,
            predicted=plan.predicted,
            blocks=plan.blocks,
            static=plan.predicted - plan.activations,
            extra_flops=plan.extra_flops)
        if cache:
            cache.put(key, **found, img_scale=list(img_scale),
                      budget=budget, model=type(model).__name__)
    print_log(
        f'local learning: memory_budget {format_bytes(budget)} at '
        f'{tuple(img_scale)}: {found["num_blocks"]} blocks ending at '
        f'{found["boundaries"]}, checkpointed blocks '
        f'{found["checkpoint"] or "none"}; predicted peak '
        f'{format_bytes(found["predicted"])} (parameters, gradients and '
        f'optimizer state {format_bytes(found["static"])}, largest block '
        f'{format_bytes(max(found["blocks"]))})' + _compute_note(found) +
        '.', logger='current')
    return found
