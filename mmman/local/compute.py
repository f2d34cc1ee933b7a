"""What a local plan computes on top of an E2E step, in FLOPs.

A boundary before unit j runs MAN's eta, copies of unit j, on the block's
output: forward, backward into the block and, with ``eta.recompute``, its
forwards again. A checkpointed block runs its units' forward twice. Both are
counted here by ``torch.utils.flop_counter`` on the model itself: each unit's
forward FLOPs in one forward of the model, and each eta on what its unit
received there.
"""
import copy
from typing import Dict, Sequence, Tuple

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

from .man import MomentumAuxNet
from .partition import Unit, unit_channels
from .unit_trace import flat_tensors, map_tensors


def unit_flops(model: nn.Module, units: Sequence[Unit], batch: dict,
               backward: bool = False) -> Tuple[Dict, Dict]:
    """FLOPs of one forward of ``model``'s loss (and its backward with
    ``backward``), per unit, and what each unit was called with.

    Returns:
        tuple: ``({i: unit i's forward FLOPs, 'stem': before the first unit,
        'tail': after the last, 'total': the whole step}, {i: (args,
        kwargs)})``, the calls detached.
    """
    start, found, calls = {}, {}, {}

    def enter(i, args, kwargs):
        start[i] = counter.get_total_flops()
        calls[i] = map_tensors((args, kwargs), torch.Tensor.detach)

    def leave(i):
        found[i] = counter.get_total_flops() - start[i]
        if i == len(units) - 1:
            found['tail'] = -counter.get_total_flops()

    handles = []
    with FlopCounterMode(display=False) as counter:
        for i, unit in enumerate(units):
            handles += [
                unit.module.register_forward_pre_hook(
                    lambda m, a, kw, i=i: enter(i, a, kw), with_kwargs=True),
                unit.module.register_forward_hook(
                    lambda m, a, o, i=i: leave(i))
            ]
        try:
            data = model.data_preprocessor(copy.deepcopy(batch), True)
            with torch.set_grad_enabled(backward):
                losses = model(**data, mode='loss')
                found['tail'] += counter.get_total_flops()
                if backward:
                    model.parse_losses(losses)[0].backward()
        finally:
            for h in handles:
                h.remove()
    model.zero_grad(set_to_none=True)
    found['stem'] = start[0]
    found['total'] = counter.get_total_flops()
    return found, calls


def build_eta(unit: Unit, eta_cfg: dict) -> MomentumAuxNet:
    """eta of a boundary before ``unit``, built as a run builds it."""
    eta = MomentumAuxNet(unit.module, unit_channels(unit, 'out')[0],
                         **eta_cfg, out_index=unit.out_index,
                         clone_inputs=unit.mutates_inputs)
    eta.follow(unit.module)
    return eta


def eta_flops(eta: MomentumAuxNet, call: tuple) -> int:
    """FLOPs of ``eta`` on a unit's recorded ``(args, kwargs)``: forward,
    backward into its input and any recomputation. Its parameters' running
    statistics move as in a step."""
    args, kwargs = call
    args = list(args)
    first = next(i for i, a in enumerate(args) if isinstance(a, torch.Tensor))
    args[first] = args[first].clone().requires_grad_()
    with FlopCounterMode(display=False) as counter:
        out = flat_tensors(eta(*args, **kwargs))[0]
        out.float().sum().backward()
    eta.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def _shapes(obj):
    """``obj`` with every tensor replaced by its shape."""
    return map_tensors(obj, lambda t: tuple(t.shape))


def measure_flops(model: nn.Module, units: Sequence[Unit],
                  etas: Dict[int, MomentumAuxNet], make_batch,
                  img_scale) -> dict:
    """FLOPs at ``img_scale`` (two reduced scales, extrapolated in the
    area as the balance's bytes are): ``forward`` (each unit's), ``eta``
    (``etas[i]``, a boundary's eta before unit i, on what unit i received;
    0 for units without) and ``tail`` (the forward after the last unit).
    Units of one architecture called with the same shapes (a stage's
    repeated units) have their eta counted once. ``model``'s buffers and
    the RNG are left as they were."""
    from .balance import extrapolate, sample_growth

    def growth(batch) -> dict:
        found, calls = unit_flops(model, units, batch)
        grown = {('forward', i): found[i] for i in range(len(units))}
        seen = {}  # a stage's repeated units: counted once
        for i, eta in etas.items():
            key = (repr(units[i].module), repr(_shapes(calls[i])))
            if key not in seen:
                seen[key] = eta_flops(eta, calls[i])
            grown[('eta', i)] = seen[key]
        grown['tail'] = found['tail']
        return grown

    samples = sample_growth(model, growth, make_batch, img_scale)
    found = {
        part: [extrapolate(samples, img_scale, (part, i))
               for i in range(len(units))]
        for part in ('forward', 'eta')
    }
    found['tail'] = extrapolate(samples, img_scale, 'tail')
    return found
