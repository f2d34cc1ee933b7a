"""The training-only state of local learning: one (eta, head) per boundary."""
import copy
from typing import Dict, Optional, Sequence, Union

import torch
import torch.nn as nn
from mmengine.registry import MODELS

from .man import MomentumAuxNet
from .partition import BlockPlan, feature_channels

# One config field switches the method; `eta` may still override the preset
# for the ablations (e.g. ``eta=dict(learnable_copy=False)`` = EMA only).
METHODS = {
    'e2e': None,
    'dgl': dict(eta=None),
    'man': dict(eta=dict(learnable_copy=True, ema=True, scale_bias=None)),
    'man++': dict(
        eta=dict(
            learnable_copy=True,
            ema=True,
            scale_bias=dict(type='ChannelScaleBias'))),
}


def resolve_eta_cfg(method: str, eta: Optional[dict],
                    momentum: float) -> Optional[dict]:
    """The eta config of ``method``, updated by the ``eta`` overrides."""
    if method not in METHODS:
        raise ValueError(f'local learning: unknown method "{method}"; '
                         f'choose from {sorted(METHODS)}.')
    preset = METHODS[method]
    if preset is None:
        return None
    cfg = copy.deepcopy(preset['eta'])
    if eta is not None:
        cfg = dict(cfg or {}, **eta)
    if cfg is None:
        return None
    cfg.setdefault('momentum', momentum)
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
        recon_head (dict, optional): InfoPro's reconstruction term added to
            every block's loss; its ``loss_weight`` may be a list, one weight
            per block (InfoPro moves it with depth).
    """

    def __init__(self,
                 plan: BlockPlan,
                 head: Union[dict, Sequence[dict]],
                 eta: Optional[dict] = None,
                 recon_head: Optional[dict] = None):
        super().__init__()
        self.etas = nn.ModuleList()
        self.heads = nn.ModuleList()
        self.recons = nn.ModuleList()
        num_local = plan.num_blocks - 1
        heads = per_block(head, num_local, 'aux_head')
        for k in range(num_local):
            feat = plan.boundary_unit(k).module
            if eta is not None:
                nxt = plan.next_unit(k).module
                channels = feature_channels(nxt)
                self.etas.append(
                    MomentumAuxNet(nxt, num_channels=channels, **eta))
            else:
                channels = feature_channels(feat)
                self.etas.append(nn.Identity())
            tokens = _is_token_unit(feat)
            self.heads.append(
                MODELS.build(
                    heads[k],
                    default_args=dict(in_channels=channels, tokens=tokens)))
            if recon_head is not None:
                recon = dict(recon_head)
                weights = recon.get('loss_weight', 1.0)
                if isinstance(weights, (list, tuple)):
                    recon['loss_weight'] = per_block(weights, num_local,
                                                      'loss_weight')[k]
                self.recons.append(
                    MODELS.build(
                        recon,
                        default_args=dict(in_channels=channels,
                                          tokens=tokens)))
        # Persistent flag: copies were taken from the (pretrained) next layer.
        self.register_buffer('initialized', torch.tensor(False))

    @property
    def uses_man(self) -> bool:
        return any(isinstance(e, MomentumAuxNet) for e in self.etas)

    def loss(self,
             k: int,
             feature: torch.Tensor,
             data_samples: Sequence,
             inputs: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
        """Local loss of block ``k``: f(Phi(eta(feature))) [+ recon]."""
        z = self.etas[k](feature)
        losses = dict(self.heads[k].loss(z, data_samples))
        if len(self.recons):
            losses.update(self.recons[k].loss(z, inputs))
        return losses

    def reset_copies(self, plan: BlockPlan) -> None:
        """Take eta' and eta'' from the current next layers."""
        for k, eta in enumerate(self.etas):
            if isinstance(eta, MomentumAuxNet):
                eta.reset(plan.next_unit(k).module)
        self.initialized.fill_(True)

    def update_ema(self, plan: BlockPlan) -> None:
        """Move every eta'' toward its next layer (after an optimizer step)."""
        for k, eta in enumerate(self.etas):
            if isinstance(eta, MomentumAuxNet):
                eta.update(plan.next_unit(k).module)

    def follow_modes(self, plan: BlockPlan) -> None:
        """Train the heads; give the copies their sources' modes."""
        self.train()
        for k, eta in enumerate(self.etas):
            if isinstance(eta, MomentumAuxNet):
                eta.follow(plan.next_unit(k).module)


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
