"""What a local plan computes on top of an E2E step, in FLOPs.

A boundary before unit j runs MAN's eta, copies of unit j, on the block's
output: forward, backward into the block and, with ``eta.recompute``, its
forwards again. A checkpointed block runs its units' forward twice. Both are
counted here by ``torch.utils.flop_counter`` on the model itself: each unit's
forward FLOPs in one forward of the model, and each eta on what its unit
receives in another.
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
               backward: bool = False) -> Dict:
    """FLOPs of one forward of ``model``'s loss (and its backward with
    ``backward``): ``{i: unit i's forward, 'stem': before the first unit,
    'tail': after the last, 'total': the whole step}``."""
    start, found = {}, {}

    def leave(i):
        found[i] = counter.get_total_flops() - start[i]
        if i == len(units) - 1:
            found['tail'] = -counter.get_total_flops()

    handles = []
    with FlopCounterMode(display=False) as counter:
        for i, unit in enumerate(units):
            handles += [
                unit.module.register_forward_pre_hook(
                    lambda m, a, i=i: start.__setitem__(
                        i, counter.get_total_flops())),
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
    return found


def etas_flops(model: nn.Module, units: Sequence[Unit],
               etas: Dict[int, MomentumAuxNet], batch: dict) -> Dict:
    """``{i: FLOPs of etas[i]}``, each run (:func:`eta_flops`) on what unit
    i receives in one forward of ``model`` (without autograd: one eta's
    activations live at a time). Units of one architecture called with the
    same shapes (a stage's repeated units) are counted once."""
    found, seen = {}, {}

    def run(i, args, kwargs):
        key = (repr(units[i].module), repr(_shapes((args, kwargs))))
        if key not in seen:
            seen[key] = eta_flops(etas[i], (args, kwargs))
        found[i] = seen[key]

    handles = [
        units[i].module.register_forward_pre_hook(
            lambda m, a, kw, i=i: run(i, a, kw), with_kwargs=True)
        for i in etas
    ]
    try:
        data = model.data_preprocessor(copy.deepcopy(batch), True)
        with torch.no_grad():
            model(**data, mode='loss')
    finally:
        for h in handles:
            h.remove()
    return found


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
    args[first] = args[first].detach().clone().requires_grad_()
    with torch.enable_grad(), FlopCounterMode(display=False) as counter:
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
    ``model``'s buffers and the RNG are left as they were."""
    from .balance import extrapolate, sample_growth

    def growth(batch) -> dict:
        found = unit_flops(model, units, batch)
        grown = {('forward', i): found[i] for i in range(len(units))}
        grown.update({('eta', i): flops for i, flops in etas_flops(
            model, units, etas, batch).items()})
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
