"""MLAAN's pieces: independent probe, cascade through the real next block,
leap augmented module.

For local block k, MLAAN's loss is
``wx * CE(probe(h_k)) + wy * f(Phi(leap(n_{k+1}(h_k))))``: the cascade runs
the *real* block k+1 (shared parameters) on block k's output, so block k's
loss also trains block k+1 (exactly one block of overlap); the leap module
holds trainable copies of the units after block k+1, the first of them summed
with its EMA copy (eta' + eta'', as in MAN).

The cascade runs block k+1 in its own mode but leaves its BatchNorm running
statistics alone (:func:`frozen_bn_stats`): the real forward pass already
updates them once per step, as end-to-end training would; MLAAN's reference
code updates them twice (``cascade_bn_update=True`` keeps that).
"""
from contextlib import contextmanager
from typing import List, Sequence

import torch
import torch.nn as nn
from mmengine.registry import MODELS
from torch.nn.modules.batchnorm import _BatchNorm

from .man import MomentumAuxNet, detached_copy, follow_mode
from .partition import Unit


def run_units(units: Sequence[Unit], x: torch.Tensor,
              first_pre: bool = True) -> torch.Tensor:
    """Run the real units in order (with their parameter-free ``pre``
    layers; the first unit's only if ``first_pre``: ``x`` may be what the
    first unit receives, after them), bypassing their forward hooks (the
    wrapper's hook of the next block must not fire here)."""
    for i, unit in enumerate(units):
        x = unit.run(x) if i or first_pre else unit.module.forward(x)
    return x


@contextmanager
def frozen_bn_stats(modules: Sequence[nn.Module]):
    """BatchNorms inside ``modules`` normalise as their mode says (batch
    statistics in train mode) without updating their running statistics or
    ``num_batches_tracked``."""
    norms = [m for module in modules for m in module.modules()
             if isinstance(m, _BatchNorm) and m.track_running_stats]
    for m in norms:
        m.track_running_stats = False
    try:
        yield
    finally:
        for m in norms:
            m.track_running_stats = True


@MODELS.register_module()
class LinearProbe(nn.Module):
    """MLAAN's independent aux: global average pool -> Linear.

    Args:
        in_channels (int): C.
        num_classes (int): Number of classes.
        tokens (bool): Inputs are ``(N, L, C)`` tokens (mean over tokens).
    """

    def __init__(self, in_channels: int, num_classes: int,
                 tokens: bool = False):
        super().__init__()
        self.tokens = tokens
        self.fc = nn.Linear(in_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.mean(dim=1) if self.tokens else x.mean(dim=(2, 3))
        return self.fc(x)


@MODELS.register_module()
class LeapModule(nn.Module):
    """Trainable copies of ``units``; the first is summed with its EMA copy.

    Every EMA copy is updated after every optimizer step (the published
    CIFAR code updates only the last module's, a bug not copied).

    Args:
        units (list[Unit]): Source units, consecutive (may be empty: then
            the module is the identity); each copy runs after its unit's
            parameter-free ``pre`` layers.
        momentum (float): EMA momentum, paper convention (0.995).
    """

    def __init__(self, units: Sequence[Unit], momentum: float = 0.995):
        super().__init__()
        self.first = None
        self._pre = [u.pre for u in units]  # the model's parameter-free layers
        if len(units):
            self.first = MomentumAuxNet(
                units[0].module, num_channels=0, momentum=momentum)
        self.rest = nn.ModuleList(detached_copy(u.module) for u in units[1:])

    @property
    def units(self) -> List[nn.Module]:
        """The trainable copies in forward order."""
        return ([self.first.copy] if self.first is not None else []) + list(
            self.rest)

    def copy_path(self, i: int, prefix: str) -> str:
        """Module path of the i-th trainable copy."""
        return f'{prefix}.first.copy' if i == 0 else f'{prefix}.rest.{i - 1}'

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for pre, unit in zip(self._pre, self.units_with_ema()):
            for layer in pre:
                x = layer(x)
            x = unit(x)
        return x

    def units_with_ema(self) -> List[nn.Module]:
        """What runs, in forward order: eta' + eta'' of the first unit, then
        the trainable copies of the others."""
        return ([self.first] if self.first is not None else []) + list(
            self.rest)

    @torch.no_grad()
    def reset(self, sources: Sequence[nn.Module]) -> None:
        """Copy every unit from its (pretrained) source."""
        if self.first is not None:
            self.first.reset(sources[0])
        for unit, source in zip(self.rest, sources[1:]):
            unit.load_state_dict(source.state_dict())

    @torch.no_grad()
    def update(self, sources: Sequence[nn.Module]) -> None:
        """EMA step of the first unit's EMA copy."""
        if self.first is not None:
            self.first.update(sources[0])

    def follow(self, sources: Sequence[nn.Module]) -> None:
        """Match the train/eval mode of the sources."""
        if self.first is not None:
            self.first.follow(sources[0])
        for unit, source in zip(self.rest, sources[1:]):
            follow_mode(unit, source)
