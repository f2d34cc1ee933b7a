"""SVHN and STL-10 in their official formats, as MMPretrain datasets."""
import os.path as osp
from typing import List, Optional

import numpy as np
from mmengine.registry import DATASETS
from mmpretrain.datasets.base_dataset import BaseDataset

from .layouts import DATASET_FILES


class _OfficialFiles(BaseDataset):
    """Arrays read from official files under ``data_root``; samples are
    ``dict(img=HxWx3 uint8 RGB, gt_label=int)`` like MMPretrain's CIFAR10.

    Args:
        data_root (str): Folder holding the official files.
        split (str): Which split's files to read.
        data_prefix (str): Sub-folder of ``data_root``. Defaults to ''.
        **kwargs: Other arguments of MMPretrain's ``BaseDataset``.
    """
    SPLITS = ('train', 'test')
    FILES: tuple = ()  # official file names, '{split}' filled in
    URL = ''

    def __init__(self,
                 data_root: str = '',
                 split: str = 'train',
                 data_prefix: str = '',
                 metainfo: Optional[dict] = None,
                 **kwargs):
        if split not in self.SPLITS:
            raise ValueError(f'{type(self).__name__}: split must be one of '
                             f'{self.SPLITS}, got "{split}".')
        self.split = split
        super().__init__(
            ann_file='',
            metainfo=metainfo,
            data_root=data_root,
            data_prefix=dict(root=data_prefix),
            **kwargs)

    def files(self) -> List[str]:
        """Paths of the files of this split."""
        return [
            osp.join(self.data_prefix['root'], name.format(split=self.split))
            for name in self.FILES
        ]

    def load_data_list(self) -> List[dict]:
        for path in self.files():
            if not osp.isfile(path):
                raise FileNotFoundError(
                    f'{type(self).__name__}: "{path}" not found. Download '
                    f'the official files from {self.URL} into '
                    f'{self.data_prefix["root"]} (README.md, "Datasets").')
        images, labels = self.read(*self.files())
        if len(images) != len(labels):
            raise ValueError(f'{type(self).__name__}: {len(images)} images '
                             f'but {len(labels)} labels in {self.files()}.')
        return [
            dict(img=img, gt_label=int(label))
            for img, label in zip(images, labels)
        ]

    def read(self, *paths):
        """``(N, H, W, 3)`` uint8 images and ``(N, )`` labels 0..9."""
        raise NotImplementedError

    def extra_repr(self) -> List[str]:
        return [f'Files: \t{", ".join(self.files())}']


@DATASETS.register_module()
class SVHN(_OfficialFiles):
    """`SVHN <http://ufldl.stanford.edu/housenumbers/>`_ cropped digits.

    Reads the official ``{split}_32x32.mat`` (format 2): ``X`` of shape
    (32, 32, 3, N), ``y`` with labels 1..10, where 10 is the digit 0.
    ``split`` is 'train' (73,257), 'test' (26,032) or 'extra' (531,131).
    """
    SPLITS = ('train', 'test', 'extra')
    FILES = DATASET_FILES['SVHN'][1]
    URL = 'http://ufldl.stanford.edu/housenumbers/'
    METAINFO = {'classes': tuple(str(d) for d in range(10))}

    def read(self, path):
        from scipy.io import loadmat
        mat = loadmat(path)
        images = np.ascontiguousarray(mat['X'].transpose(3, 0, 1, 2))
        return images, mat['y'].reshape(-1).astype(np.int64) % 10


@DATASETS.register_module()
class STL10(_OfficialFiles):
    """`STL-10 <https://cs.stanford.edu/~acoates/stl10/>`_, labelled splits.

    Reads the official binaries ``{split}_X.bin`` (uint8, 3x96x96 per image,
    channel by channel, each column-major) and ``{split}_y.bin`` (uint8
    labels 1..10). ``split`` is 'train' (5,000) or 'test' (8,000).
    """
    FILES = DATASET_FILES['STL10'][1]
    URL = 'https://cs.stanford.edu/~acoates/stl10/'
    METAINFO = {
        'classes': ('airplane', 'bird', 'car', 'cat', 'deer', 'dog', 'horse',
                    'monkey', 'ship', 'truck')
    }

    def read(self, x_path, y_path):
        raw = np.fromfile(x_path, dtype=np.uint8).reshape(-1, 3, 96, 96)
        images = np.ascontiguousarray(raw.transpose(0, 3, 2, 1))  # N,H,W,C
        return images, np.fromfile(y_path, dtype=np.uint8).astype(
            np.int64) - 1
