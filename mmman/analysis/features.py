"""The output of every local block of a trained model, on a whole split."""
import copy
from dataclasses import dataclass
from typing import Callable, List, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.config import Config

from ..local.partition import build_block_plan
from ..utils.checkpoint import mmengine_checkpoints_allowed


@dataclass
class BlockFeatures:
    """Per-block features of one split.

    Args:
        units (list[str]): The unit ending each block, e.g. ``layer2.3``.
        features (list[Tensor]): One ``(N, D)`` float tensor per block.
        labels (Tensor, optional): ``(N, )`` image labels (classification).
    """
    units: List[str]
    features: List[torch.Tensor]
    labels: Optional[torch.Tensor]


def block_output_units(model: nn.Module,
                       cfg: Config,
                       num_blocks: Optional[int] = None) -> List[str]:
    """Module paths of the unit ending each of the K blocks.

    K comes from ``num_blocks`` or the config's ``optim_wrapper.local_cfg``
    (``num_blocks`` or ``boundaries``), so an E2E model is cut where the
    local model of the same config is. The last block ends at the backbone's
    last unit.
    """
    local_cfg = cfg.get('optim_wrapper', {}).get('local_cfg', {}) or {}
    backbone = local_cfg.get('backbone', 'backbone')
    if num_blocks is not None:
        plan = build_block_plan(model, num_blocks=num_blocks,
                                backbone=backbone)
    elif local_cfg.get('boundaries') or local_cfg.get('num_blocks'):
        plan = build_block_plan(
            model,
            num_blocks=(None if local_cfg.get('boundaries') else
                        local_cfg['num_blocks']),
            boundaries=local_cfg.get('boundaries'),
            backbone=backbone)
    else:
        raise ValueError('the config has no optim_wrapper.local_cfg.'
                         'num_blocks or boundaries: give num_blocks')
    ends = [plan.units[i].name for i in plan.ends]
    return ends + [plan.units[-1].name]


def _flatten(output, pool: Optional[int]) -> torch.Tensor:
    if isinstance(output, (tuple, list)):
        output = output[0]
    if pool and output.dim() == 4 and output.shape[-1] > pool:
        output = F.adaptive_avg_pool2d(output, pool)
    return output.flatten(1).float()


@torch.no_grad()
def block_features(model: nn.Module,
                   dataloader,
                   units: List[str],
                   pool: Optional[int] = None,
                   progress: Optional[Callable[[], None]] = None
                   ) -> BlockFeatures:
    """Run ``model``'s backbone over ``dataloader``; collect block outputs.

    Args:
        model (nn.Module): A built OpenMMLab model with ``data_preprocessor``
            and ``backbone``; put in eval mode here.
        dataloader: Batches as the model's ``val_step`` takes them.
        units (list[str]): Module paths whose outputs are collected.
        pool (int, optional): Average-pool maps larger than ``pool`` x
            ``pool`` to that size before flattening (keeps features small).
        progress (callable, optional): Called once per batch.
    """
    model.eval()
    modules = dict(model.named_modules())
    missing = [u for u in units if u not in modules]
    if missing:
        raise KeyError(f'no module named {missing} in the model')
    store = {u: [] for u in units}
    handles = [
        modules[u].register_forward_hook(
            lambda _m, _i, out, u=u: store[u].append(_flatten(out, pool)))
        for u in units
    ]
    labels = []
    try:
        for batch in dataloader:
            data = model.data_preprocessor(copy.copy(batch), False)
            model.backbone(data['inputs'])
            for sample in data['data_samples'] or []:
                if 'gt_label' in sample:
                    labels.append(sample.gt_label[:1])
            if progress is not None:
                progress()
    finally:
        for handle in handles:
            handle.remove()
    return BlockFeatures(
        units=list(units),
        features=[torch.cat(store[u]) for u in units],
        labels=torch.cat(labels) if labels else None)


def load_trained_model(config: str, checkpoint: str):
    """Build ``config``'s model, load ``checkpoint`` strictly; (model, cfg).

    The checkpoint is a plain OpenMMLab one (mmman saves no auxiliary
    networks), so this is what MMDet/MMSeg/MMPretrain would load too.
    """
    from mmengine.registry import MODELS, init_default_scope
    from mmengine.runner import load_checkpoint

    cfg = Config.fromfile(config)
    init_default_scope(cfg.get('default_scope', 'mmengine'))
    model = MODELS.build(cfg.model)
    with mmengine_checkpoints_allowed():
        load_checkpoint(model, checkpoint, map_location='cpu', strict=True,
                        logger='silent')
    return model.eval(), cfg


def split_dataloader(cfg: Config, split: str, batch_size: int = 128):
    """A deterministic loader of ``split`` ('train' or 'val').

    The train split is read with the *val* pipeline (no augmentation) and no
    shuffling, so features of the same images are comparable across models.
    """
    from mmengine.runner import Runner

    loader = copy.deepcopy(cfg[f'{split}_dataloader'])
    if split != 'val':
        loader.dataset.pipeline = copy.deepcopy(
            cfg.val_dataloader.dataset.pipeline)
    loader.update(
        batch_size=batch_size,
        num_workers=0,
        persistent_workers=False,
        sampler=dict(type='DefaultSampler', shuffle=False))
    return Runner.build_dataloader(loader)


def collect_block_features(models: List[tuple],
                           splits: List[str],
                           num_blocks: Optional[int] = None,
                           pool: Optional[int] = None,
                           batch_size: int = 128) -> dict:
    """Block features of several trained models, with one progress bar.

    Args:
        models (list[tuple]): ``(name, config, checkpoint)`` triples.
        splits (list[str]): Splits to extract, e.g. ``['train', 'val']``.
    Returns:
        dict: ``{name: {split: BlockFeatures}}``; all models have the same
        number of blocks (else ValueError).
    """
    from mmengine.utils import ProgressBar

    loaded = []
    for name, config, checkpoint in models:
        model, cfg = load_trained_model(config, checkpoint)
        loaders = {s: split_dataloader(cfg, s, batch_size) for s in splits}
        loaded.append((name, model, block_output_units(model, cfg,
                                                       num_blocks), loaders))
    counts = {name: len(units) for name, _, units, _ in loaded}
    if len(set(counts.values())) > 1:
        raise ValueError(f'the models have different block counts: {counts}')
    bar = ProgressBar(
        sum(len(loader) for *_, loaders in loaded
            for loader in loaders.values()))
    features = {
        name: {
            split: block_features(model, loader, units, pool, bar.update)
            for split, loader in loaders.items()
        }
        for name, model, units, loaders in loaded
    }
    print()
    return features
