"""Complete ``local_cfg.balance`` from the config: the train pipeline's
image scale and the work dir as the plan cache."""
from typing import Optional

from mmengine.config import Config, ConfigDict

from mmman.local.balance import resolve_balance_cfg
from mmman.local.budget import resolve_budget_cfg


_RESIZES = ('Resize', 'RandomResize', 'RandomChoiceResize', 'RandomCrop',
            'RandomResizedCrop', 'ResizeEdge')


def _size_hw(transform: dict) -> Optional[tuple]:
    """(H, W) a transform leaves an image at, if it fixes one."""
    kind = transform.get('type')
    if kind == 'RandomCrop':  # MMDet/MMSeg: crop_size=(h, w); MMPretrain int
        size = transform.get('crop_size')
    elif kind == 'RandomResizedCrop':
        size = transform.get('scale')
    elif kind == 'RandomChoiceResize':  # the largest of the scales, (w, h)
        scales = transform['scales']
        if not all(isinstance(s, (tuple, list)) for s in scales):
            return None  # shortest edges (ResizeShortestEdge): a crop decides
        size = max(scales, key=lambda s: s[0] * s[1])[::-1]
    else:  # Resize / RandomResize: scale=(w, h), the OpenMMLab convention
        size = transform.get('scale')
        size = size[::-1] if isinstance(size, (tuple, list)) else size
    if isinstance(size, int):
        return (size, size)
    return tuple(size) if size else None


def pipeline_img_scale(cfg: Config) -> Optional[tuple]:
    """(H, W) of the training images: the train pipeline's last resize or
    crop (the largest choice of a multi-scale resize); None if it fixes
    none."""
    dataset = cfg.train_dataloader.dataset
    while 'pipeline' not in dataset and ('dataset' in dataset
                                         or 'datasets' in dataset):
        dataset = dataset.get('dataset') or dataset['datasets'][0]
    scale = None
    for transform in dataset.get('pipeline', []):
        if transform.get('type') in _RESIZES:
            scale = _size_hw(transform) or scale
    return scale


def configure_balance(cfg: Config,
                      img_scale: Optional[tuple] = None) -> None:
    """Complete ``local_cfg.balance``: the image scale from the train
    pipeline when not given, and the work dir as the plan cache. A pipeline
    that fixes no size leaves the scale unset: building the optimizer
    wrapper then asks for it (testing needs none).

    ``img_scale`` instead balances at that size with nothing cached (a
    benchmark's or a test's input size)."""
    local_cfg = cfg.get('optim_wrapper', {}).get('local_cfg') or {}
    if local_cfg.get('memory_budget') is not None:
        budget = resolve_budget_cfg(local_cfg['memory_budget'])
        if img_scale is not None:
            budget.update(img_scale=tuple(img_scale), cache_dir=None)
        elif budget.get('img_scale') is None:
            budget['img_scale'] = pipeline_img_scale(cfg)
        if budget.get('cache_dir') is None and img_scale is None:
            budget['cache_dir'] = cfg.get('work_dir')
        local_cfg['memory_budget'] = ConfigDict(budget)
    if 'balance' not in local_cfg:
        return
    balance = resolve_balance_cfg(local_cfg['balance'])
    if balance is not None:
        if img_scale is not None:
            balance.update(img_scale=tuple(img_scale), cache_dir=None)
        elif balance.get('img_scale') is None:
            balance['img_scale'] = pipeline_img_scale(cfg)
        balance.setdefault('cache_dir', cfg.get('work_dir'))
        balance = ConfigDict(balance)
    local_cfg['balance'] = balance
