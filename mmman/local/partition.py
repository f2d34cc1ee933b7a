"""Cut a backbone into K gradient-isolated local blocks.

A backbone is seen as a sequence of *units*: the residual units of a ResNet
(``layer2.3``), the transformer blocks of a ViT (``layers.5``) or the conv
layers of a VGG (``features.3``). A few families the seeds and our shipped
configs use are read off their attributes (their unit names are part of
saved plans); every other backbone's units are found from one traced forward
pass (:mod:`mmman.local.unit_trace`): Swin, ConvNeXt, MiT, PVT, HRNet's
stages, EfficientNet, MobileNets ... Everything before the first unit (stem,
patch embedding) belongs to the first block, unless the backbone makes its
stem a unit (``stem_unit=True``); everything after the last unit (neck,
heads) to the last block. A block plan
records where each block ends and which unit starts the next block: that unit
is the "first layer of the next block" MAN copies, and block k's local loss
is computed on what it receives.
"""
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import torch.nn as nn

from .unit_trace import (TraceError, cached_trace_units, shapes_channels,
                         unit_shapes)


class PartitionError(ValueError):
    """A local-learning partition that cannot be honoured."""


@dataclass(frozen=True)
class Unit:
    """One partitionable layer of the backbone.

    Args:
        name (str): Module path inside the model, e.g. ``backbone.layer2.3``.
        module (nn.Module): The unit itself.
        trainable (bool): Whether any of its parameters requires grad.
        pre (tuple[nn.Module]): Parameter-free layers the backbone runs
            between the previous unit and this one (VGG's stage max-pools):
            whatever runs this unit on the previous unit's output (MLAAN's
            cascade and leap module) runs them first.
        in_shape, out_shape (tuple, optional): Traced shapes of its first
            input and output tensor (one image): ``(1, C, H, W)`` maps or
            ``(1, L, C)`` tokens.
        extra_inputs (bool): It takes more than its first tensor (Swin's
            ``hw_shape``, HRNet's branch list).
        tail (tuple[nn.Module]): Layers with parameters that run after it
            and before the next unit (output norms, transitions): its block's.
        in_index, out_index (int): Which of the tensors it receives / returns
            is the feature (the first one with the batch as dim 0).
        out_layers (tuple): ``(backbone output index, layer)`` for layers
            after it whose output only feeds that output (Swin's and
            ConvNeXt's per-stage norms): when its block is finished, they
            learn from the model's loss on their input detached.
        mutates_inputs (bool): It writes into a tensor it receives (TNT):
            eta's copies of it get copies of their inputs.
    """
    name: str
    module: nn.Module
    trainable: bool
    pre: Tuple[nn.Module, ...] = ()
    in_shape: Optional[Tuple[int, ...]] = None
    out_shape: Optional[Tuple[int, ...]] = None
    extra_inputs: bool = False
    tail: Tuple[nn.Module, ...] = ()
    in_index: int = 0
    out_index: int = 0
    out_layers: Tuple[Tuple[int, nn.Module], ...] = ()
    mutates_inputs: bool = False

    def run(self, x, module: Optional[nn.Module] = None):
        """``pre`` then the unit (or ``module``, a copy of it) on ``x``,
        bypassing the unit's forward hooks."""
        for layer in self.pre:
            x = layer(x)
        return (self.module.forward if module is None else module)(x)


@dataclass(frozen=True)
class BlockPlan:
    """Where the local blocks of a model start and end.

    Args:
        units (list[Unit]): All backbone units in forward order.
        ends (list[int]): Index of the last unit of every block but the last.
        output_units (list[int]): For each backbone output, the index of the
            unit that produces it.
        backbone (str): Module path of the backbone.
    """
    units: Tuple[Unit, ...]
    ends: Tuple[int, ...]
    output_units: Tuple[int, ...]
    backbone: str

    @property
    def num_blocks(self) -> int:
        return len(self.ends) + 1

    def block_of(self, unit_index: int) -> int:
        """Block index (0-based) of a unit."""
        return sum(unit_index > end for end in self.ends)

    def boundary_unit(self, k: int) -> Unit:
        """The last unit of block ``k`` (``k < num_blocks - 1``)."""
        return self.units[self.ends[k]]

    def next_unit(self, k: int) -> Unit:
        """The first unit of block ``k + 1``: what MAN copies for block k."""
        return self.units[self.ends[k] + 1]

    def block_units(self, k: int) -> List[Unit]:
        """The units of block ``k``; the last block also owns neck and heads."""
        start = self.ends[k - 1] + 1 if k > 0 else 0
        stop = self.ends[k] + 1 if k < len(self.ends) else len(self.units)
        return list(self.units[start:stop])

    def output_layer(self, i: int) -> Optional[nn.Module]:
        """The layer whose output only feeds backbone output ``i`` (see
        :attr:`Unit.out_layers`), or None."""
        unit = self.units[self.output_units[i]]
        return next((m for j, m in unit.out_layers if j == i), None)

    def finished_outputs(self) -> List[int]:
        """Backbone outputs produced inside a block that is not the last."""
        last = self.num_blocks - 1
        return [
            i for i, u in enumerate(self.output_units)
            if self.block_of(u) < last
        ]

    def describe(self) -> str:
        """One line per block, e.g. ``block 1: layer2.0 .. layer2.3``."""
        lines = []
        for k in range(self.num_blocks):
            units = self.block_units(k)
            trainable = [u for u in units if u.trainable]
            span = f'{units[0].name} .. {units[-1].name}' if units else '-'
            tail = ' + neck/heads' if k == self.num_blocks - 1 else ''
            lines.append(f'block {k + 1}: {span} '
                         f'({len(trainable)} trainable units){tail}')
        return '\n'.join(lines)


def _resnet_units(backbone: nn.Module):
    """Residual units of MMDet/MMSeg/MMPretrain ResNet, ResNetV1c/d, ResNeXt."""
    stages = getattr(backbone, 'res_layers', None)
    if not stages or not all(
            isinstance(getattr(backbone, s, None), nn.Sequential)
            for s in stages):
        return None
    units, output_units = [], []
    for i, stage in enumerate(stages):
        for j, unit in enumerate(getattr(backbone, stage)):
            units.append((f'{stage}.{j}', unit))
        if i in backbone.out_indices:
            output_units.append(len(units) - 1)
    return units, output_units


def _vit_units(backbone: nn.Module):
    """Transformer blocks of MMPretrain's VisionTransformer family."""
    layers = getattr(backbone, 'layers', None)
    if not isinstance(layers, nn.ModuleList) or not hasattr(
            backbone, 'patch_embed') or not hasattr(backbone, 'out_indices'):
        return None
    units = [(f'layers.{i}', layer) for i, layer in enumerate(layers)]
    output_units = sorted(i % len(layers) for i in backbone.out_indices)
    return units, output_units


def _resnet_stem_units(backbone: nn.Module):
    """A ResNet whose stem is a unit of its own (``stem_unit=True``).

    The seeds count the stem as a local module ("K=16" for ResNet-32 = stem
    + 15 residual units). Backbones that set ``stem_unit`` and hold the stem
    in one module ``stem`` (e.g. :class:`mmman.models.CifarResNet`) list it
    first; otherwise the stem belongs to the first block.
    """
    stem = getattr(backbone, 'stem', None)
    if getattr(backbone, 'stem_unit', False) is not True or not isinstance(
            stem, nn.Module):
        return None
    found = _resnet_units(backbone)
    if found is None:
        return None
    units, output_units = found
    return [('stem', stem)] + units, [i + 1 for i in output_units]


def _vgg_units(backbone: nn.Module):
    """Conv layers of MMPretrain's VGG (``features``, ``range_sub_modules``).

    A stage's max-pool has no parameters and is no unit: it is the ``pre``
    of the next stage's first conv (so it runs at the start of the next
    block, and before any copy of that conv). A classifier inside the
    backbone (``num_classes > 0``) belongs to the last block.
    """
    name = getattr(backbone, 'module_name', None)
    stages = getattr(backbone, 'range_sub_modules', None)
    features = getattr(backbone, name, None) if isinstance(name, str) else None
    if not isinstance(features, nn.Sequential) or not stages:
        return None
    units, last_of_stage, pending = [], [], []
    for start, end in stages:
        for j in range(start, end):
            if any(True for _ in features[j].parameters()):
                units.append((f'{name}.{j}', features[j], tuple(pending)))
                pending = []
            elif units:  # before the first conv it is the stem's
                pending.append(features[j])
        last_of_stage.append(len(units) - 1)
    output_units = [
        last_of_stage[i] for i in sorted(backbone.out_indices)
        if i < len(stages)
    ]
    if getattr(backbone, 'num_classes', 0) > 0:
        output_units.append(len(units) - 1)  # the classifier's output
    return units, output_units


def _cspnext_units(backbone: nn.Module):
    """Stage modules of MMDet's CSPNeXt / CSPDarknet (RTMDet, YOLOX).

    ``layers`` names the stem and the stages; every module of a stage (its
    downsampling conv, SPP block, CSP layer) is a unit.
    """
    names = getattr(backbone, 'layers', None)
    if not (isinstance(names, list) and names
            and all(isinstance(n, str) for n in names)
            and isinstance(getattr(backbone, names[-1], None), nn.Sequential)):
        return None
    units, output_units = [], []
    for i, name in enumerate(names):
        if name == 'stem':
            if i in backbone.out_indices:
                raise PartitionError('local learning: a stem output '
                                     '(out_indices 0) is not supported.')
            continue
        for j, unit in enumerate(getattr(backbone, name)):
            units.append((f'{name}.{j}', unit))
        if i in backbone.out_indices:
            output_units.append(len(units) - 1)
    return units, output_units


UNIT_FINDERS = (_resnet_stem_units, _resnet_units, _vit_units, _vgg_units,
                _cspnext_units)


def _traced_units(backbone: nn.Module, prefix: str):
    """Units of any other backbone, from one traced forward pass."""
    try:
        calls, output_units, _ = cached_trace_units(backbone)
    except TraceError as e:
        raise PartitionError(
            'local learning cannot partition a backbone of type '
            f'{type(backbone).__name__}: {e}') from None
    units = []
    for call in calls:
        module = backbone.get_submodule(call.name)
        units.append(
            Unit(f'{prefix}.{call.name}', module, _trainable(module),
                 in_shape=call.in_shape, out_shape=call.out_shape,
                 extra_inputs=call.extra_inputs,
                 tail=tuple(backbone.get_submodule(t) for t in call.tail),
                 in_index=call.in_index, out_index=call.out_index,
                 out_layers=tuple((i, backbone.get_submodule(path))
                                  for i, path in call.out_layers),
                 mutates_inputs=call.mutates_inputs))
    return units, output_units


def _trainable(module: nn.Module) -> bool:
    return any(p.requires_grad for p in module.parameters())


def backbone_units(model: nn.Module,
                   backbone: str = 'backbone') -> Tuple[List[Unit], List[int]]:
    """List the partitionable units of ``model.<backbone>``.

    Raises:
        PartitionError: if the backbone is missing or cannot be cut (the
            message says why).
    """
    module = model
    for part in backbone.split('.'):
        if not hasattr(module, part):
            raise PartitionError(
                f'local learning: the model ({type(model).__name__}) has no '
                f'module "{backbone}" to partition.')
        module = getattr(module, part)
    for finder in UNIT_FINDERS:
        found = finder(module)
        if found is not None:
            named, output_units = found
            shapes = unit_shapes(module, [m for _, m, *_ in named])
            units = [
                Unit(f'{backbone}.{name}', m, _trainable(m), *pre,
                     in_shape=shape[0], out_shape=shape[1])
                for (name, m, *pre), shape in zip(named, shapes)
            ]
            return units, output_units
    return _traced_units(module, backbone)


def check_num_blocks(units: Sequence[Unit], num_blocks) -> List[int]:
    """Validate K against the trainable units; returns their indices."""
    if isinstance(num_blocks, bool) or not isinstance(
            num_blocks, int) or num_blocks < 1:
        raise PartitionError('local learning: num_blocks must be a '
                             f'positive integer, got {num_blocks!r}.')
    trainable = [i for i, u in enumerate(units) if u.trainable]
    if not trainable:
        raise PartitionError('local learning: every backbone unit is frozen; '
                             'there is nothing to split into blocks.')
    if num_blocks > len(trainable):
        raise PartitionError(
            f'local learning: num_blocks={num_blocks} is more than the '
            f'{len(trainable)} trainable backbone units '
            f'({units[trainable[0]].name} .. {units[trainable[-1]].name}).')
    return trainable


def _even_ends(units: Sequence[Unit], num_blocks: int) -> List[int]:
    trainable = check_num_blocks(units, num_blocks)
    # Larger blocks first, like numpy.array_split.
    base, extra = divmod(len(trainable), num_blocks)
    ends, pos = [], 0
    for k in range(num_blocks - 1):
        pos += base + (1 if k < extra else 0)
        ends.append(trainable[pos - 1])
    return ends


def _named_ends(units: Sequence[Unit], boundaries: Sequence[str],
                backbone: str) -> List[int]:
    index = {u.name: i for i, u in enumerate(units)}
    ends = []
    for name in boundaries:
        full = name if name in index else f'{backbone}.{name}'
        if full not in index:
            raise PartitionError(
                f'local learning: boundary "{name}" is not a backbone unit; '
                f'units are {units[0].name} .. {units[-1].name}.')
        i = index[full]
        if not units[i].trainable:
            raise PartitionError(f'local learning: boundary "{name}" lies in '
                                 'a frozen stage; frozen units get no block.')
        if i == len(units) - 1:
            raise PartitionError(
                f'local learning: boundary "{name}" is the last backbone '
                'unit; the last block must keep at least one unit.')
        ends.append(i)
    if sorted(set(ends)) != ends:
        raise PartitionError('local learning: boundaries must be distinct '
                             f'and in forward order, got {list(boundaries)}.')
    return ends


def build_block_plan(model: nn.Module,
                     num_blocks: Optional[int] = None,
                     boundaries: Optional[Sequence[str]] = None,
                     backbone: str = 'backbone') -> BlockPlan:
    """Plan K gradient-isolated blocks over ``model.<backbone>``.

    Args:
        model (nn.Module): The (unwrapped) model.
        num_blocks (int, optional): K; trainable units are split evenly,
            larger blocks first. Frozen units get no block of their own.
        boundaries (list[str], optional): Explicit last unit of each block but
            the last, e.g. ``['layer2.3', 'layer3.2']``. Exclusive with
            ``num_blocks``.
        backbone (str): Module path of the backbone. Defaults to 'backbone'.
    """
    if (num_blocks is None) == (boundaries is None):
        raise PartitionError('local learning: give exactly one of '
                             '`num_blocks` and `boundaries`.')
    units, output_units = backbone_units(model, backbone)
    if boundaries is not None:
        ends = _named_ends(units, boundaries, backbone)
    else:
        ends = _even_ends(units, num_blocks)
    return BlockPlan(
        tuple(units), tuple(ends), tuple(output_units), backbone=backbone)


def unit_channels(unit: Unit, side: str) -> Tuple[int, bool]:
    """``(channels, tokens)`` of what ``unit`` receives (``side='in'``) or
    returns (``'out'``): traced, or read off its last conv / linear layer."""
    shape = unit.in_shape if side == 'in' else unit.out_shape
    if shape:
        return shapes_channels(shape)
    return feature_channels(unit.module), not any(
        isinstance(m, nn.Conv2d) for m in unit.module.modules())


def feature_channels(module: nn.Module) -> int:
    """Channels (conv) or embedding width (transformer) a unit outputs."""
    for m in reversed(list(module.modules())):
        if isinstance(m, nn.Conv2d):
            return m.out_channels
        if isinstance(m, nn.Linear):
            return m.out_features
    raise PartitionError(
        f'cannot infer the output channels of {type(module).__name__}.')
