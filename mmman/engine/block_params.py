"""The parameters of each local block, read off the block plan.

Block k < K owns its backbone units with the layers that run after them
before the next unit (a unit's ``tail``: output norms, transitions; block 1
also the backbone's parameters that run before the first unit: stem, patch
embedding, position embedding) and its auxiliary parts (eta, head, MLAAN's probe and leap module); the last
block owns everything else the optimizer trains (its units, the backbone's
final norm, neck and heads). MLAAN's cascade lets block k's loss reach block
k+1's units too: they still belong to block k+1, as the plan says.
"""
from typing import List, Sequence

import torch.nn as nn

from mmman.local.auxiliary import LocalAuxiliary
from mmman.local.partition import BlockPlan


def block_param_groups(plan: BlockPlan, aux: LocalAuxiliary,
                       model: nn.Module,
                       params: Sequence[nn.Parameter]) -> List[list]:
    """``K`` lists of the parameters in ``params`` (the optimizer's), one per
    block in forward order, each parameter in exactly one list."""
    owner = {}
    backbone = model.get_submodule(plan.backbone)
    unit_params = set()
    for i, unit in enumerate(plan.units):
        k = plan.block_of(i)
        for module in (unit.module, ) + unit.tail:
            for p in module.parameters():
                owner.setdefault(id(p), k)
                unit_params.add(id(p))
    for p in backbone.parameters():  # the stem: what runs before the units
        if id(p) in unit_params:
            break
        owner.setdefault(id(p), 0)
    for k, block in enumerate(aux.blocks):
        for p in block.parameters():
            owner.setdefault(id(p), k)
    groups: List[list] = [[] for _ in range(plan.num_blocks)]
    for p in params:
        groups[owner.get(id(p), plan.num_blocks - 1)].append(p)
    return groups
