"""The seeds' base objectives as configs: which head each local block gets
(``local_cfg.objective``) and InfoPro's published per-block weights. The
heads themselves are in :mod:`mmman.heads.seed_objectives`."""
import copy
from typing import List, Optional, Sequence, Tuple, Union


# Published ResNet-32 (CIFAR) settings, K -> ((a1, a2), (b1, b2)):
# lambda_1 first -> last block, lambda_2 first -> last block.
INFOPRO_PRESETS = {
    2: ((5.0, 0.0), (1.0, 0.0)),
    4: ((6.0, 1.0), (0.0, 2.0)),
    8: ((5.0, 0.0), (0.0, 2.0)),
    16: ((5.0, 0.2), (0.05, 0.5)),
}


def infopro_weights(
        num_blocks: int,
        recon: Optional[Sequence[float]] = None,
        task: Optional[Sequence[float]] = None) -> List[Tuple[float, float]]:
    """(lambda_1, lambda_2) of each local block i = 0 .. K-2.

    r = i / (K - 2) (0 when K = 2), lambda_1 = a1 (1 - r) + a2 r,
    lambda_2 = b1 (1 - r) + b2 r. Without ``recon``/``task`` the published
    ResNet-32 values for K are used.
    """
    if recon is None or task is None:
        if num_blocks not in INFOPRO_PRESETS:
            raise ValueError(
                f'InfoPro publishes weights for K in {sorted(INFOPRO_PRESETS)}'
                f', not K={num_blocks}: set objective=dict(type=\'infopro\', '
                'recon=(a1, a2), task=(b1, b2)).')
        preset = INFOPRO_PRESETS[num_blocks]
        recon = preset[0] if recon is None else recon
        task = preset[1] if task is None else task
    (a1, a2), (b1, b2) = recon, task
    weights = []
    for i in range(num_blocks - 1):
        r = i / (num_blocks - 2) if num_blocks > 2 else 0.0
        weights.append((a1 * (1 - r) + a2 * r, b1 * (1 - r) + b2 * r))
    return weights


# objective name -> head type of each local block
OBJECTIVES = {
    'dgl': 'DGLAuxHead',
    'infopro': 'InfoProAuxHead',
    'predsim': 'PredSimAuxHead',
}


def objective_heads(objective: Union[str, dict],
                    num_blocks: int) -> List[dict]:
    """Head configs of the K-1 local blocks for a base objective.

    ``objective`` is ``'dgl'``, ``'infopro'``, ``'predsim'`` or a dict with
    that ``type`` plus head arguments; for InfoPro ``recon=(a1, a2)`` and
    ``task=(b1, b2)`` replace the published schedule.
    """
    cfg = dict(type=objective) if isinstance(objective, str) else dict(
        copy.deepcopy(objective))
    name = cfg.pop('type', None)
    if name not in OBJECTIVES:
        raise ValueError(f'local learning: unknown objective {name!r}; '
                         f'choose from {sorted(OBJECTIVES)}.')
    recon, task = cfg.pop('recon', None), cfg.pop('task', None)
    heads = [dict(cfg, type=OBJECTIVES[name]) for _ in range(num_blocks - 1)]
    if name == 'infopro':
        for head, (l1, l2) in zip(heads,
                                  infopro_weights(num_blocks, recon, task)):
            head.update(recon_weight=l1, task_weight=l2)
    elif recon is not None or task is not None:
        raise ValueError('local learning: recon/task weights belong to the '
                         '\'infopro\' objective.')
    return heads
