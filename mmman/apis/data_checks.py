"""Clear errors for a dataset that is not where the config says."""
import os.path as osp

from mmengine.config import Config


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
