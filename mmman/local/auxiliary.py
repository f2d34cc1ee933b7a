"""The training-only state of local learning: one (eta, head) per boundary."""
import copy
from typing import Callable, Dict, Optional, Sequence, Union

import torch
import torch.nn as nn
from mmengine.registry import MODELS

from .man import MomentumAuxNet
from .mlaan import LeapModule, LinearProbe, run_units
from .partition import BlockPlan, feature_channels
from .targets import LocalTargets

_MAN = dict(learnable_copy=True, ema=True, scale_bias=None)

# One config field switches the enhancement; `eta` may still override the
# preset for the ablations (e.g. ``eta=dict(learnable_copy=False)`` = EMA
# only). ``mlaan``: the MLAAN paths (independent + cascade through the real
# next block + leap module); its eta, if any, sits before the independent aux.
METHODS = {
    'e2e': None,
    'local': dict(eta=None),
    'dgl': dict(eta=None),  # the former name of 'local' (no enhancement)
    'man': dict(eta=_MAN),
    'man++': dict(eta=dict(_MAN, balance=dict(type='BranchBalance'))),
    'mlaan': dict(eta=None, mlaan=True),
    'mlaan+man': dict(eta=_MAN, mlaan=True),
}


def _check_method(method: str) -> dict:
    if method not in METHODS:
        raise ValueError(f'local learning: unknown method "{method}"; '
                         f'choose from {sorted(METHODS)}.')
    return METHODS[method]


def resolve_eta_cfg(method: str, eta: Optional[dict],
                    momentum: float) -> Optional[dict]:
    """The eta config of ``method``, updated by the ``eta`` overrides."""
    preset = _check_method(method)
    if preset is None:
        return None
    cfg = copy.deepcopy(preset['eta'])
    if eta is not None:
        cfg = dict(cfg or {}, **eta)
    if cfg is None:
        return None
    cfg.setdefault('momentum', momentum)
    return cfg


def resolve_mlaan_cfg(method: str, mlaan: Optional[dict],
                      momentum: float) -> Optional[dict]:
    """MLAAN settings of ``method`` (None when it is no MLAAN method)."""
    preset = _check_method(method)
    if not (preset or {}).get('mlaan'):
        if mlaan is not None:
            raise ValueError('local learning: `mlaan` settings need method '
                             '\'mlaan\' or \'mlaan+man\'.')
        return None
    cfg = dict(wx=0.001, wy=0.999, leap_units=1, momentum=momentum)
    cfg.update(mlaan or {})
    return cfg


class LocalAuxiliary(nn.Module):
    """eta (MAN) and auxiliary head of every block but the last.

    Lives outside the model, so it never reaches the model's ``state_dict``:
    the optim wrapper owns it and saves it with the optimizer state.

    Args:
        plan (BlockPlan): The block plan.
        head (dict | list[dict]): Config of the auxiliary head, or one per
            block; ``in_channels`` and ``tokens`` are filled in per block.
        eta (dict, optional): :class:`MomentumAuxNet` arguments; None for the
            plain local baseline (no eta).
        targets (callable, optional): The task adapter,
            ``(data_samples, inputs) -> LocalTargets``. Heads with
            ``uses_local_targets`` get its result, other heads (dense task
            heads) the data samples.
        mlaan (dict, optional): MLAAN (``wx``, ``wy``, ``leap_units``,
            ``momentum``): ``head`` then trains on the cascade path, a
            :class:`LinearProbe` after eta on the block output.
    """

    def __init__(self,
                 plan: BlockPlan,
                 head: Union[dict, Sequence[dict]],
                 eta: Optional[dict] = None,
                 targets: Optional[Callable] = None,
                 mlaan: Optional[dict] = None,
                 num_classes: Optional[int] = None):
        super().__init__()
        self.target_fn = targets
        self.mlaan = mlaan
        self._cache = None
        self.etas = nn.ModuleList()
        self.heads = nn.ModuleList()
        if mlaan is not None:
            self.probes = nn.ModuleList()
            self.leaps = nn.ModuleList()
        num_local = plan.num_blocks - 1
        heads = per_block(head, num_local, 'aux_head')
        for k in range(num_local):
            feat = plan.boundary_unit(k).module
            tokens = _is_token_unit(feat)
            if eta is not None:
                nxt = plan.next_unit(k).module
                channels = feature_channels(nxt)
                self.etas.append(
                    MomentumAuxNet(nxt, num_channels=channels, **eta))
            else:
                channels = feature_channels(feat)
                self.etas.append(nn.Identity())
            if mlaan is not None:
                if num_classes is None:
                    num_classes = heads[k]['num_classes']
                self.probes.append(
                    LinearProbe(channels, num_classes, tokens=tokens))
                leap = LeapModule(
                    leap_units(plan, k, mlaan['leap_units']),
                    momentum=mlaan['momentum'])
                self.leaps.append(leap)
                last = (leap.units[-1] if len(leap.units) else
                        plan.block_units(k + 1)[-1].module)
                channels = feature_channels(last)
            self.heads.append(
                MODELS.build(
                    heads[k],
                    default_args=dict(in_channels=channels, tokens=tokens)))
        # Persistent flag: copies were taken from the (pretrained) next layer.
        self.register_buffer('initialized', torch.tensor(False))
        self._plan = plan  # MLAAN runs the real next block

    @property
    def uses_man(self) -> bool:
        return any(isinstance(e, MomentumAuxNet) for e in self.etas)

    def targets(self, data_samples: Sequence,
                inputs: Optional[torch.Tensor] = None) -> LocalTargets:
        """The batch's targets from the task adapter, once per batch."""
        if self._cache is not None and self._cache[0] is data_samples and \
                self._cache[1] is inputs:
            return self._cache[2]
        if self.target_fn is None:
            found = LocalTargets(data_samples=data_samples, inputs=inputs)
        else:
            found = self.target_fn(data_samples, inputs)
        self._cache = (data_samples, inputs, found)
        return found

    def _head_loss(self, head: nn.Module, x: torch.Tensor,
                   targets: LocalTargets) -> Dict[str, torch.Tensor]:
        if getattr(head, 'uses_local_targets', False):
            return dict(head.loss(x, targets))
        return dict(head.loss(x, targets.data_samples))

    def loss(self,
             k: int,
             feature: torch.Tensor,
             data_samples: Sequence,
             inputs: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
        """Local loss of block ``k``: f(Phi(eta(feature))).

        With MLAAN: ``wx * probe(eta(h)) + wy * f(Phi(leap(n_{k+1}(h))))``.
        """
        targets = self.targets(data_samples, inputs)
        z = self.etas[k](feature)
        if self.mlaan is None:
            return self._head_loss(self.heads[k], z, targets)
        wx, wy = self.mlaan['wx'], self.mlaan['wy']
        losses = {
            'loss_indep': wx * targets.class_loss(self.probes[k](z))
        }
        units = [u.module for u in self._plan.block_units(k + 1)]
        c = self.leaps[k](run_units(units, feature))
        cascade = self._head_loss(self.heads[k], c, targets)
        for name, value in cascade.items():
            losses[name] = wy * value if 'loss' in name else value
        return losses

    def reset_copies(self, plan: BlockPlan) -> None:
        """Take eta' and eta'' (and the leap copies) from the current
        next layers."""
        for k, eta in enumerate(self.etas):
            if isinstance(eta, MomentumAuxNet):
                eta.reset(plan.next_unit(k).module)
        for k, leap in enumerate(getattr(self, 'leaps', [])):
            leap.reset(leap_units(plan, k, self.mlaan['leap_units']))
        self.initialized.fill_(True)

    def update_ema(self, plan: BlockPlan) -> None:
        """Move every eta'' (and every leap EMA copy) toward its source
        (after an optimizer step)."""
        for k, eta in enumerate(self.etas):
            if isinstance(eta, MomentumAuxNet):
                eta.update(plan.next_unit(k).module)
        for k, leap in enumerate(getattr(self, 'leaps', [])):
            leap.update(leap_units(plan, k, self.mlaan['leap_units']))

    def follow_modes(self, plan: BlockPlan) -> None:
        """Train the heads; give the copies their sources' modes."""
        self.train()
        for k, eta in enumerate(self.etas):
            if isinstance(eta, MomentumAuxNet):
                eta.follow(plan.next_unit(k).module)
        for k, leap in enumerate(getattr(self, 'leaps', [])):
            leap.follow(leap_units(plan, k, self.mlaan['leap_units']))

    def copy_sources(self, plan: BlockPlan) -> Dict[str, str]:
        """``{path of a trainable copy in this module: unit it copies}``
        (so ``paramwise_cfg`` can treat a copy like its source)."""
        found = {}
        for k, eta in enumerate(self.etas):
            if isinstance(eta, MomentumAuxNet) and eta.copy is not None:
                found[f'etas.{k}.copy'] = plan.next_unit(k).name
        for k, leap in enumerate(getattr(self, 'leaps', [])):
            names = leap_unit_names(plan, k, self.mlaan['leap_units'])
            for i, name in enumerate(names):
                found[leap.copy_path(i, prefix=f'leaps.{k}')] = name
        return found


def leap_unit_names(plan: BlockPlan, k: int, num: int) -> list:
    """Names of the units the leap module of block ``k`` copies: the
    ``num`` units after block k+1 (none when k+1 is the last block)."""
    if k + 1 >= plan.num_blocks - 1:
        return []
    start = plan.ends[k + 1] + 1
    return [u.name for u in plan.units[start:start + num]]


def leap_units(plan: BlockPlan, k: int, num: int) -> list:
    """The source units of block ``k``'s leap module."""
    if k + 1 >= plan.num_blocks - 1:
        return []
    start = plan.ends[k + 1] + 1
    return [u.module for u in plan.units[start:start + num]]


def per_block(value, num: int, name: str) -> list:
    """A setting given once for all blocks or as a list, one per block."""
    if isinstance(value, (list, tuple)):
        if len(value) != num:
            raise ValueError(f'local learning: {name} lists {len(value)} '
                             f'entries for {num} local blocks.')
        return list(value)
    return [value] * num


def _is_token_unit(unit: nn.Module) -> bool:
    """Transformer units output (N, L, C) tokens rather than (N, C, H, W)."""
    return not any(isinstance(m, nn.Conv2d) for m in unit.modules())
