"""The training-only state of local learning: the auxiliary parts of every
block but the last (:class:`LocalBlockAux`), held by :class:`LocalAuxiliary`.
"""
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmengine.registry import MODELS

from .local_targets import LocalTargets
from .man import MomentumAuxNet
from .mlaan import LeapModule, LinearProbe, frozen_bn_stats, run_units
from .partition import BlockPlan, PartitionError, Unit, unit_channels
from .unit_trace import as_head_input

# (path of a part in checkpoints before LocalBlockAux, its name in a block),
# in the order the parameters of older optimizers list them.
PARTS: Tuple[Tuple[str, str], ...] = (('etas', 'eta'), ('heads', 'head'),
                                      ('probes', 'probe'), ('leaps', 'leap'),
                                      ('man_heads', 'man_head'))
_OLD_NAMES = {new: old for old, new in PARTS}


class LocalBlockAux(nn.Module):
    """The auxiliary parts of local block ``k`` and its loss.

    ``eta`` (MAN's copies of the next block's first unit, or the identity)
    before ``head`` (Phi and f); with MLAAN the head trains on the cascade
    through the real next block and ``leap``, a ``probe`` sees the block
    output, and with MLAAN + MAN a ``man_head`` sees eta's output.

    Args:
        plan (BlockPlan): The block plan.
        k (int): The block.
        head (dict): Config of the auxiliary head (``in_channels`` and
            ``tokens`` are filled in).
        eta (dict, optional): :class:`MomentumAuxNet` arguments; None: no eta.
        mlaan (dict, optional): MLAAN settings (``wx``, ``wy``, ``wm``,
            ``leap_units``, ``momentum``, ``cascade_bn_update``).
        num_classes (int, optional): Classes of MLAAN's probe.
    """

    def __init__(self,
                 plan: BlockPlan,
                 k: int,
                 head: dict,
                 eta: Optional[dict] = None,
                 mlaan: Optional[dict] = None,
                 num_classes: Optional[int] = None):
        super().__init__()
        self.k = k
        self.mlaan = mlaan
        self._plan = plan  # the real next units: eta, MLAAN's cascade
        nxt = plan.next_unit(k)
        # the block's output is what the next block receives
        channels, tokens = (unit_channels(nxt, 'in') if nxt.in_shape else
                            unit_channels(plan.boundary_unit(k), 'out'))
        eta_channels = channels
        self.eta = nn.Identity()
        if eta is not None:
            eta_channels, tokens = unit_channels(nxt, 'out')
            self.eta = MomentumAuxNet(
                nxt.module, num_channels=eta_channels, **eta,
                out_index=nxt.out_index, clone_inputs=nxt.mutates_inputs)
        if mlaan is None:
            self.head = _build_head(head, eta_channels, tokens)
            return
        if any(u.extra_inputs for u in plan.units):
            raise PartitionError(
                'local learning: MLAAN runs the next block\'s units on a '
                'block\'s output alone; the units of this backbone take more '
                f'inputs ({nxt.name} does). Use \'man++\' or \'local\'.')
        leap = LeapModule(self.leap_units(), momentum=mlaan['momentum'])
        last = leap.units[-1] if len(leap.units) else None
        last_channels = (unit_channels(plan.block_units(k + 1)[-1], 'out')[0]
                         if last is None else unit_channels(
                             Unit('', last, True), 'out')[0])
        self.head = _build_head(head, last_channels, tokens)
        self.probe = LinearProbe(
            channels, num_classes or head['num_classes'], tokens=tokens)
        self.leap = leap
        if eta is not None:
            self.man_head = _build_head(head, eta_channels, tokens)

    def leap_units(self) -> List[Unit]:
        """The source units of the leap module (MLAAN)."""
        return leap_units(self._plan, self.k, self.mlaan['leap_units'])

    def run_eta(self, feature: torch.Tensor, args: tuple = (),
                kwargs: Optional[dict] = None) -> torch.Tensor:
        """eta on the block output, called as the next unit is: ``args`` and
        ``kwargs`` are that call's (``feature`` is its first tensor); the
        first tensor of eta's output."""
        if isinstance(self.eta, nn.Identity):
            return as_head_input(feature)
        return as_head_input(self.eta(*(args or (feature, )), **(kwargs or {})))

    def loss(self, feature: torch.Tensor, targets: LocalTargets,
             args: tuple = (),
             kwargs: Optional[dict] = None) -> Dict[str, torch.Tensor]:
        """f(Phi(eta(feature))) on the block output ``feature`` (what the
        next unit receives; ``args``/``kwargs``: its whole call); with MLAAN
        ``wx * CE(probe(h)) + wy * f(Phi(leap(n_{k+1}(h))))``, and with
        MLAAN + MAN also ``wm * f(Phi_m(eta(h)))`` (terms suffixed ``_man``).
        """
        if self.mlaan is None:
            return _head_loss(self.head, self.run_eta(feature, args, kwargs),
                              targets)
        cfg = self.mlaan
        losses = {
            'loss_indep': cfg['wx'] * targets.class_loss(self.probe(feature))
        }
        units = self._plan.block_units(self.k + 1)
        if cfg['cascade_bn_update']:
            nxt = run_units(units, feature, first_pre=False)
        else:
            with frozen_bn_stats([u.module for u in units]):
                nxt = run_units(units, feature, first_pre=False)
        losses.update(
            _weighted(_head_loss(self.head, self.leap(nxt), targets),
                      cfg['wy']))
        if hasattr(self, 'man_head'):
            man = _head_loss(self.man_head, self.run_eta(feature), targets)
            losses.update(_weighted(man, cfg['wm'], suffix='_man'))
        return losses

    @torch.no_grad()
    def reset_copies(self) -> None:
        """Take eta' and eta'' (and the leap copies) from their sources."""
        if isinstance(self.eta, MomentumAuxNet):
            self.eta.reset(self._plan.next_unit(self.k).module)
        if hasattr(self, 'leap'):
            self.leap.reset([u.module for u in self.leap_units()])

    @torch.no_grad()
    def update_ema(self) -> None:
        """Move eta'' (and the leap's EMA copy) toward its source."""
        if isinstance(self.eta, MomentumAuxNet):
            self.eta.update(self._plan.next_unit(self.k).module)
        if hasattr(self, 'leap'):
            self.leap.update([u.module for u in self.leap_units()])

    def follow_modes(self) -> None:
        """Train the heads; give the copies their sources' modes."""
        self.train()
        if isinstance(self.eta, MomentumAuxNet):
            self.eta.follow(self._plan.next_unit(self.k).module)
        if hasattr(self, 'leap'):
            self.leap.follow([u.module for u in self.leap_units()])

    def copy_sources(self) -> Dict[str, str]:
        """``{path of a trainable copy in this block: unit it copies}``."""
        found = {}
        if isinstance(self.eta, MomentumAuxNet) and self.eta.copy is not None:
            found['eta.copy'] = self._plan.next_unit(self.k).name
        if hasattr(self, 'leap'):
            for i, unit in enumerate(self.leap_units()):
                found[self.leap.copy_path(i, prefix='leap')] = unit.name
        return found


class LocalAuxiliary(nn.Module):
    """The auxiliary parts of every block but the last, and the batch's
    targets they share.

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
        mlaan (dict, optional): MLAAN settings (see :class:`LocalBlockAux`).
        num_classes (int, optional): Classes of MLAAN's probes.
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
        heads = per_block(head, plan.num_blocks - 1, 'aux_head')
        self.blocks = nn.ModuleList(
            LocalBlockAux(plan, k, heads[k], eta, mlaan, num_classes)
            for k in range(plan.num_blocks - 1))
        # Persistent flag: copies were taken from the (pretrained) next layer.
        self.register_buffer('initialized', torch.tensor(False))
        self._register_load_state_dict_pre_hook(_upgrade_keys_hook)

    def _parts(self, name: str) -> nn.ModuleList:
        """One part of every block (a view: not registered here)."""
        return nn.ModuleList(
            getattr(b, name) for b in self.blocks if hasattr(b, name))

    @property
    def etas(self) -> nn.ModuleList:
        return self._parts('eta')

    @property
    def heads(self) -> nn.ModuleList:
        return self._parts('head')

    @property
    def probes(self) -> nn.ModuleList:
        return self._parts('probe')

    @property
    def leaps(self) -> nn.ModuleList:
        return self._parts('leap')

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

    def loss(self,
             k: int,
             feature: torch.Tensor,
             data_samples: Sequence,
             inputs: Optional[torch.Tensor] = None,
             args: tuple = (),
             kwargs: Optional[dict] = None) -> Dict[str, torch.Tensor]:
        """Local loss of block ``k`` on its output ``feature`` (what block
        k+1's first unit receives; ``args``/``kwargs``: that unit's whole
        call, when it takes more) (:meth:`LocalBlockAux.loss`)."""
        return self.blocks[k].loss(feature,
                                   self.targets(data_samples, inputs), args,
                                   kwargs)

    def reset_copies(self) -> None:
        """Take every eta' and eta'' (and leap copy) from its source."""
        for block in self.blocks:
            block.reset_copies()
        self.initialized.fill_(True)

    def update_ema(self) -> None:
        """Move every EMA copy toward its source (after an optimizer step)."""
        for block in self.blocks:
            block.update_ema()

    def follow_modes(self) -> None:
        """Train the heads; give the copies their sources' modes."""
        for block in self.blocks:
            block.follow_modes()

    def legacy_params(self) -> List[nn.Parameter]:
        """The trainable parameters in the order of :meth:`legacy_children`
        (the order the constructor gives the optimizer)."""
        return [
            p for _, part in self.legacy_children()
            for p in part.parameters() if p.requires_grad
        ]

    def legacy_children(self) -> List[Tuple[str, nn.Module]]:
        """``(path, part)`` of every block part, named and ordered as before
        :class:`LocalBlockAux` (``heads.2``): the order of the auxiliary
        parameters in an optimizer, and the names ``paramwise_cfg`` keys
        match (``mmman_aux.heads``)."""
        return [(f'{old}.{k}', getattr(block, new))
                for old, new in PARTS
                for k, block in enumerate(self.blocks)
                if hasattr(block, new)]

    def copy_sources(self) -> Dict[str, str]:
        """``{legacy path of a trainable copy: unit it copies}`` (so
        ``paramwise_cfg`` can treat a copy like its source)."""
        found = {}
        for k, block in enumerate(self.blocks):
            for path, unit in block.copy_sources().items():
                part, rest = path.split('.', 1)
                found[f'{_OLD_NAMES[part]}.{k}.{rest}'] = unit
        return found

    @staticmethod
    def upgrade_keys(state: dict) -> dict:
        """A state dict written before :class:`LocalBlockAux` (keys
        ``etas.0.copy...``) with this layout's keys (``blocks.0.eta...``)."""
        return {_upgrade_key(key): value for key, value in state.items()}


def _upgrade_key(key: str) -> str:
    for old, new in PARTS:
        if key.startswith(old + '.'):
            k, rest = key[len(old) + 1:].split('.', 1)
            return f'blocks.{k}.{new}.{rest}'
    return key


def _upgrade_keys_hook(state_dict, prefix, *args):
    for key in list(state_dict):
        if key.startswith(prefix):
            new = prefix + _upgrade_key(key[len(prefix):])
            if new != key:
                state_dict[new] = state_dict.pop(key)


def _head_loss(head: nn.Module, x: torch.Tensor,
               targets: LocalTargets) -> Dict[str, torch.Tensor]:
    if getattr(head, 'uses_local_targets', False):
        return dict(head.loss(x, targets))
    return dict(head.loss(x, targets.data_samples))


def leap_units(plan: BlockPlan, k: int, num: int) -> List[Unit]:
    """The source units of block ``k``'s leap module."""
    if k + 1 >= plan.num_blocks - 1:
        return []
    start = plan.ends[k + 1] + 1
    return list(plan.units[start:start + num])


def _build_head(cfg: dict, channels: int, tokens: bool) -> nn.Module:
    """An auxiliary head. No Runner's ``init_weights`` reaches it (it lives
    outside the model): a head that needs its class's initialisation does
    it itself (:class:`~mmman.heads.DenseDetAuxHead`; docs/methods.md says
    why the others keep PyTorch's defaults)."""
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
