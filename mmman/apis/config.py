"""Config handling shared by tools/train.py and tools/test.py."""
import argparse
import os
import os.path as osp
from typing import Optional

from mmengine.config import Config, ConfigDict, DictAction

from mmman.local.balance import resolve_balance_cfg


class DatasetNotFoundError(FileNotFoundError):
    """A dataloader points at a data root that does not exist."""


def check_data_roots(cfg: Config, loaders=('train_dataloader',
                                           'val_dataloader',
                                           'test_dataloader')) -> None:
    """Fail with one message naming the missing path, before building.

    Checks each dataloader's ``data_root``, the official files of the
    classification datasets (CIFAR, SVHN, STL-10, ImageNet splits) and, when
    set, its annotation file (COCO), then the ``ann_file`` of the matching
    evaluators (``CocoMetric``).
    """
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
        _check_dataset_files(name, dataset)
        ann_file = dataset.get('ann_file')
        if ann_file:
            path = osp.join(root or '', ann_file)
            if not osp.isfile(path):
                raise DatasetNotFoundError(
                    f'{name}: annotation file not found at "{path}". '
                    'Prepare the dataset as described in README.md '
                    '("Datasets").')
    for name in (n.replace('dataloader', 'evaluator') for n in loaders):
        evaluators = cfg.get(name) or []
        if not isinstance(evaluators, (list, tuple)):
            evaluators = [evaluators]
        for evaluator in evaluators:
            ann_file = evaluator.get('ann_file')
            if ann_file and not osp.isfile(ann_file):
                raise DatasetNotFoundError(
                    f'{name}: annotation file not found at "{ann_file}". '
                    'With a moved data root, point the metric at it too: '
                    f'--cfg-options {name}.ann_file=PATH.')


def _check_dataset_files(name: str, dataset: dict) -> None:
    """The official files a classification dataset type reads
    (``mmman.datasets.DATASET_FILES``: CIFAR, SVHN, STL-10, ImageNet)."""
    from mmman.datasets.layouts import DATASET_FILES
    kind = dataset.get('type')
    if not isinstance(kind, str):
        return
    default_split, names = DATASET_FILES.get(kind.split('.')[-1], (None, ()))
    split = dataset.get('split') or default_split
    prefix = dataset.get('data_prefix', '')
    if not split or not isinstance(prefix, str):
        return
    folder = osp.join(dataset.get('data_root') or '', prefix)
    for pattern in names:
        path = osp.join(folder, pattern.format(split=split))
        if not osp.exists(path):
            raise DatasetNotFoundError(
                f'{name}: {kind} needs "{path}", which does not exist. '
                'Put the official files there as described in README.md '
                '("Datasets"), or point the config at them with '
                f'--cfg-options {name}.dataset.data_root=PATH.')


def enable_amp(cfg: Config) -> None:
    """Turn on mixed precision without dropping local learning.

    MMDet's ``--amp`` replaces the wrapper type by ``AmpOptimWrapper``, which
    would silently train end to end; here the local wrapper becomes its AMP
    twin, whose local backward calls share the model's loss scaler. Needs
    CUDA; the config change itself is :func:`amp_optim_wrapper`.
    """
    import torch
    if not torch.cuda.is_available():
        raise RuntimeError('--amp needs a CUDA device (MMEngine\'s '
                           'AmpOptimWrapper does not run on CPU).')
    amp_optim_wrapper(cfg)


_AMP_TWINS = {
    'OptimWrapper': 'AmpOptimWrapper',
    'LocalOptimWrapper': 'LocalAmpOptimWrapper'
}


def optim_wrapper_type(wrapper: dict) -> str:
    """Name of the optim wrapper a config builds, its constructor's default
    included: without ``type``, ``LocalOptimWrapperConstructor`` builds
    ``LocalOptimWrapper`` and MMEngine's constructors ``OptimWrapper``."""
    kind = wrapper.get('type')
    if kind is not None:
        return kind if isinstance(kind, str) else kind.__name__
    from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS
    from mmman.engine import LocalOptimWrapperConstructor
    constructor = wrapper.get('constructor', 'DefaultOptimWrapperConstructor')
    if isinstance(constructor, str):
        constructor = OPTIM_WRAPPER_CONSTRUCTORS.get(constructor)
    if isinstance(constructor, type) and issubclass(
            constructor, LocalOptimWrapperConstructor):
        return 'LocalOptimWrapper'
    return 'OptimWrapper'


def amp_optim_wrapper(cfg: Config) -> None:
    """Switch ``cfg.optim_wrapper`` to the AMP twin of the wrapper it builds
    (``LocalOptimWrapper`` -> ``LocalAmpOptimWrapper``, ``OptimWrapper`` ->
    ``AmpOptimWrapper``) with dynamic loss scaling unless set."""
    wrapper = cfg.optim_wrapper
    kind = optim_wrapper_type(wrapper)
    if kind in _AMP_TWINS.values():
        return
    if kind not in _AMP_TWINS:
        raise ValueError(f'--amp: cannot make {kind} mixed precision.')
    wrapper.type = _AMP_TWINS[kind]
    wrapper.setdefault('loss_scale', 'dynamic')


def resolve_work_dir(cfg: Config, config_path: str,
                     work_dir: Optional[str]) -> None:
    """``--work-dir`` > config ``work_dir`` > ``./work_dirs/<config name>``."""
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(config_path))[0])


def add_common_args(parser: argparse.ArgumentParser) -> None:
    """Arguments shared by tools/train.py and tools/test.py."""
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, e.g. '
        'optim_wrapper.local_cfg.method=man')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def load_config(args: argparse.Namespace) -> Config:
    """Config from ``args.config`` with launcher, overrides and work dir."""
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    resolve_work_dir(cfg, args.config, args.work_dir)
    configure_balance(cfg)
    return cfg


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
        size = max(transform['scales'], key=lambda s: s[0] * s[1])[::-1]
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


def init_cpu_distributed(cfg: Config) -> bool:
    """Start ``torch.distributed`` with gloo for ``--launcher pytorch``
    on a machine without an accelerator.

    MMEngine's pytorch launcher calls ``torch.cuda.set_device`` first, and
    its ``Runner.wrap_model`` gives DDP ``device_ids=[LOCAL_RANK]``, which
    DDP refuses for a CPU model. ``Runner.setup_env`` starts no process group
    when one exists, so this one starts it from torchrun's environment
    (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``), keeping
    ``env_cfg.dist_cfg.timeout``, and sets ``device_ids=None`` for a DDP
    model wrapper. Returns whether it applied.
    """
    import datetime

    import torch.distributed as dist
    from mmengine.device import get_device
    if cfg.get('launcher', 'none') != 'pytorch' or get_device() != 'cpu':
        return False
    if not dist.is_initialized():
        timeout = cfg.get('env_cfg', {}).get('dist_cfg', {}).get('timeout')
        kwargs = {} if timeout is None else dict(
            timeout=datetime.timedelta(seconds=timeout))
        dist.init_process_group(backend='gloo', init_method='env://', **kwargs)
    from mmengine.registry import MODEL_WRAPPERS
    from torch.nn.parallel import DistributedDataParallel
    if cfg.get('model_wrapper_cfg') is None:  # MMEngine's default wrapper
        cfg.model_wrapper_cfg = dict(
            type='MMDistributedDataParallel',
            broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False))
    wrapper = cfg.model_wrapper_cfg
    kind = wrapper.get('type', 'MMDistributedDataParallel')
    if isinstance(kind, str):
        kind = MODEL_WRAPPERS.get(kind)
    if isinstance(kind, type) and issubclass(kind, DistributedDataParallel):
        wrapper.setdefault('device_ids', None)
    return True


def close_distributed() -> None:
    """End of a tool: wait for every rank, then tear the process group down
    (MMEngine leaves it open; a gloo group torn down by the interpreter's
    exit can abort a rank with "terminate called without an active
    exception")."""
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def build_runner(cfg: Config):
    """``Runner.from_cfg``, or the config's own ``runner_type``; on CPU with
    ``--launcher pytorch`` after :func:`init_cpu_distributed`."""
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner
    init_cpu_distributed(cfg)
    if 'runner_type' not in cfg:
        return Runner.from_cfg(cfg)
    return RUNNERS.build(cfg)
