"""The training-only state of local learning: one (eta, head) per boundary."""
from typing import Callable, Dict, List, Optional, Sequence, Union

import torch
import torch.nn as nn
from mmengine.registry import MODELS

from .man import MomentumAuxNet
from .mlaan import LeapModule, LinearProbe, frozen_bn_stats, run_units
from .partition import BlockPlan, Unit, feature_channels
from .local_targets import LocalTargets


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
            if eta is not None:
                self.man_heads = nn.ModuleList()
        num_local = plan.num_blocks - 1
        heads = per_block(head, num_local, 'aux_head')
        for k in range(num_local):
            feat = plan.boundary_unit(k).module
            tokens = _is_token_unit(feat)
            channels = feature_channels(feat)
            if eta is not None:
                nxt = plan.next_unit(k).module
                eta_channels = feature_channels(nxt)
                self.etas.append(
                    MomentumAuxNet(nxt, num_channels=eta_channels, **eta))
            else:
                eta_channels = channels
                self.etas.append(nn.Identity())
            if mlaan is None:
                self.heads.append(_build_head(heads[k], eta_channels, tokens))
                continue
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
            self.heads.append(
                _build_head(heads[k], feature_channels(last), tokens))
            if eta is not None:
                self.man_heads.append(
                    _build_head(heads[k], eta_channels, tokens))
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

    def forget_batch(self) -> None:
        """Drop the cached targets (and InfoPro's image) of the last batch."""
        self._cache = None

    def block_parts(self, k: int) -> List[nn.Module]:
        """The auxiliary modules that block ``k``'s loss trains."""
        parts = [self.etas[k], self.heads[k]]
        for name in ('probes', 'leaps', 'man_heads'):
            if hasattr(self, name):
                parts.append(getattr(self, name)[k])
        return parts

    def eta(self, k: int, feature: torch.Tensor) -> torch.Tensor:
        """eta of block ``k`` on its output (after the next unit's
        parameter-free ``pre`` layers, as the next block runs them)."""
        if isinstance(self.etas[k], nn.Identity):
            return feature
        return self._plan.next_unit(k).run(feature, self.etas[k])

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

        With MLAAN: ``wx * CE(probe(h)) + wy * f(Phi(leap(n_{k+1}(h))))``,
        and with MLAAN + MAN also ``wm * f(Phi_m(eta(h)))`` (terms suffixed
        ``_man``).
        """
        targets = self.targets(data_samples, inputs)
        if self.mlaan is None:
            return self._head_loss(self.heads[k], self.eta(k, feature),
                                   targets)
        cfg = self.mlaan
        losses = {
            'loss_indep': cfg['wx'] * targets.class_loss(
                self.probes[k](feature))
        }
        units = self._plan.block_units(k + 1)
        if cfg['cascade_bn_update']:
            nxt = run_units(units, feature)
        else:
            with frozen_bn_stats([u.module for u in units]):
                nxt = run_units(units, feature)
        cascade = self._head_loss(self.heads[k], self.leaps[k](nxt), targets)
        losses.update(_weighted(cascade, cfg['wy']))
        if hasattr(self, 'man_heads'):
            man = self._head_loss(self.man_heads[k], self.eta(k, feature),
                                  targets)
            losses.update(_weighted(man, cfg['wm'], suffix='_man'))
        return losses

    def reset_copies(self, plan: BlockPlan) -> None:
        """Take eta' and eta'' (and the leap copies) from the current
        next layers."""
        for k, eta in enumerate(self.etas):
            if isinstance(eta, MomentumAuxNet):
                eta.reset(plan.next_unit(k).module)
        for k, leap in enumerate(getattr(self, 'leaps', [])):
            leap.reset(self._leap_sources(plan, k))
        self.initialized.fill_(True)

    def update_ema(self, plan: BlockPlan) -> None:
        """Move every eta'' (and every leap EMA copy) toward its source
        (after an optimizer step)."""
        for k, eta in enumerate(self.etas):
            if isinstance(eta, MomentumAuxNet):
                eta.update(plan.next_unit(k).module)
        for k, leap in enumerate(getattr(self, 'leaps', [])):
            leap.update(self._leap_sources(plan, k))

    def follow_modes(self, plan: BlockPlan) -> None:
        """Train the heads; give the copies their sources' modes."""
        self.train()
        for k, eta in enumerate(self.etas):
            if isinstance(eta, MomentumAuxNet):
                eta.follow(plan.next_unit(k).module)
        for k, leap in enumerate(getattr(self, 'leaps', [])):
            leap.follow(self._leap_sources(plan, k))

    def _leap_sources(self, plan: BlockPlan, k: int) -> List[nn.Module]:
        return [
            u.module for u in leap_units(plan, k, self.mlaan['leap_units'])
        ]

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
    return [u.name for u in leap_units(plan, k, num)]


def leap_units(plan: BlockPlan, k: int, num: int) -> List[Unit]:
    """The source units of block ``k``'s leap module."""
    if k + 1 >= plan.num_blocks - 1:
        return []
    start = plan.ends[k + 1] + 1
    return list(plan.units[start:start + num])


def _build_head(cfg: dict, channels: int, tokens: bool) -> nn.Module:
    return MODELS.build(
        cfg, default_args=dict(in_channels=channels, tokens=tokens))


def _weighted(losses: dict, weight: float, suffix: str = '') -> dict:
    """``weight`` times every loss term (others, e.g. accuracies, kept)."""
    return {
        f'{n}{suffix}': weight * v if 'loss' in n else v
        for n, v in losses.items()
    }


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
