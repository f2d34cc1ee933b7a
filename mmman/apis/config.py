"""Config handling shared by tools/train.py and tools/test.py."""
import os.path as osp
from typing import Optional

from mmengine.config import Config, DictAction  # noqa: F401 (re-export)


class DatasetNotFoundError(FileNotFoundError):
    """A dataloader points at a data root that does not exist."""


def check_data_roots(cfg: Config, loaders=('train_dataloader',
                                           'val_dataloader',
                                           'test_dataloader')) -> None:
    """Fail with one message naming the missing path, before building."""
    for name in loaders:
        loader = cfg.get(name)
        if not loader:
            continue
        dataset = loader.get('dataset', {})
        while 'dataset' in dataset:  # RepeatDataset, ClassBalancedDataset
            dataset = dataset['dataset']
        root = dataset.get('data_root')
        if root and not osp.isdir(root):
            raise DatasetNotFoundError(
                f'{name}: dataset not found at "{root}" '
                f'({osp.abspath(root)}). Prepare it as described in '
                'README.md ("Datasets"), or point the config at it with '
                f'--cfg-options {name}.dataset.data_root=PATH.')


def enable_amp(cfg: Config) -> None:
    """Turn on mixed precision without dropping local learning.

    MMDet's ``--amp`` replaces the wrapper type by ``AmpOptimWrapper``, which
    would silently train end to end; here the local wrapper becomes its AMP
    twin, whose local backward calls share the model's loss scaler.
    """
    import torch
    if not torch.cuda.is_available():
        raise RuntimeError('--amp needs a CUDA device (MMEngine\'s '
                           'AmpOptimWrapper does not run on CPU).')
    wrapper = cfg.optim_wrapper
    kind = wrapper.get('type', 'OptimWrapper')
    if kind in ('AmpOptimWrapper', 'LocalAmpOptimWrapper'):
        return
    if kind == 'LocalOptimWrapper':
        wrapper.type = 'LocalAmpOptimWrapper'
    elif kind == 'OptimWrapper':
        wrapper.type = 'AmpOptimWrapper'
    else:
        raise ValueError(f'--amp: cannot make {kind} mixed precision.')
    wrapper.setdefault('loss_scale', 'dynamic')


def resolve_work_dir(cfg: Config, config_path: str,
                     work_dir: Optional[str]) -> None:
    """``--work-dir`` > config ``work_dir`` > ``./work_dirs/<config name>``."""
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(config_path))[0])
