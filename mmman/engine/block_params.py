"""The parameters of each local block, read off the block plan.

Block k < K owns its backbone units with the layers that run after them
before the next unit (a unit's ``tail``: output norms, transitions; block 1
also the backbone's parameters that run before the first unit: stem, patch
embedding, position embedding) and its auxiliary parts (eta, head, MLAAN's probe and leap module); the last
block owns everything else the optimizer trains (its units, the backbone's
final norm, neck and heads). MLAAN's cascade lets block k's loss reach block
k+1's units too: they still belong to block k+1, as the plan says.
"""
from itertools import chain
from typing import Dict, List, Sequence

import torch.nn as nn

from mmman.local.auxiliary import LocalAuxiliary
from mmman.local.partition import BlockPlan


def tensor_owners(plan: BlockPlan, aux: LocalAuxiliary,
                  model: nn.Module) -> Dict[int, int]:
    """``{id(tensor): block}`` for the parameters and buffers of ``model``
    and ``aux`` that belong to a block before the last (anything else is
    the last block's)."""
    owner: Dict[int, int] = {}
    unit_modules = set()
    for i, unit in enumerate(plan.units):
        k = plan.block_of(i)
        unit_modules.add(id(unit.module))
        for module in (unit.module, ) + unit.tail:
            for t in module_tensors(module):
                owner.setdefault(id(t), k)
    # The stem: what the backbone holds before its first unit.
    for module in model.get_submodule(plan.backbone).modules():
        if id(module) in unit_modules:
            break
        for t in module_tensors(module, recurse=False):
            owner.setdefault(id(t), 0)
    for k, block in enumerate(aux.blocks):
        for t in module_tensors(block):
            owner.setdefault(id(t), k)
    return owner


def module_tensors(module: nn.Module, recurse: bool = True):
    """The parameters and buffers of ``module``."""
    return chain(module.parameters(recurse), module.buffers(recurse))


def block_param_groups(plan: BlockPlan, aux: LocalAuxiliary,
                       model: nn.Module,
                       params: Sequence[nn.Parameter]) -> List[list]:
    """``K`` lists of the parameters in ``params`` (the optimizer's), one per
    block in forward order, each parameter in exactly one list."""
    owner = tensor_owners(plan, aux, model)
    groups: List[list] = [[] for _ in range(plan.num_blocks)]
    for p in params:
        groups[owner.get(id(p), plan.num_blocks - 1)].append(p)
    return groups
