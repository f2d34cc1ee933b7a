"""SVHN and STL-10 read their official formats; the generated data is what
MMPretrain reads; a missing dataset stops a run naming the path."""
import os
import os.path as osp

import numpy as np
import pytest
from mmengine.config import Config
from mmengine.registry import DATASETS, init_default_scope
from mmengine.runner import Runner
from scipy.io import loadmat, savemat

import mmman  # noqa: F401  (registers SVHN, STL10)
from mmman.apis import DatasetNotFoundError, check_data_roots
from mmman.datasets import (CLS_CLASSES, make_shapes_classification,
                            make_stl10_like, make_svhn_like, write_stl10_bin)
from helpers import run_python

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = osp.join(ROOT, 'configs', 'mmpretrain')


def _build(cfg):
    init_default_scope('mmpretrain')
    return DATASETS.build(cfg)


def test_svhn_reads_format_2_and_maps_label_10_to_digit_0(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (32, 32, 3, 3), dtype=np.uint8)
    # official layout: X (32, 32, 3, N), y (N, 1) in 1..10
    savemat(str(tmp_path / 'test_32x32.mat'),
            dict(X=x, y=np.array([[10], [1], [9]], np.uint8)))
    ds = _build(dict(type='SVHN', data_root=str(tmp_path), split='test'))
    assert len(ds) == 3 and ds.CLASSES == tuple('0123456789')
    assert [ds.get_data_info(i)['gt_label'] for i in range(3)] == [0, 1, 9]
    np.testing.assert_array_equal(ds.get_data_info(1)['img'], x[..., 1])


def test_svhn_generator_round_trip(tmp_path):
    make_svhn_like(str(tmp_path), num_train=12, num_test=4, seed=1)
    mat = loadmat(str(tmp_path / 'train_32x32.mat'))
    assert mat['X'].shape == (32, 32, 3, 12) and mat['X'].dtype == np.uint8
    assert set(mat['y'].ravel()) == set(range(1, 11))  # 10 = digit 0
    ds = _build(dict(type='SVHN', data_root=str(tmp_path)))
    assert ds.get_gt_labels().tolist() == [i % 10 for i in range(12)]


def test_stl10_reads_column_major_binaries(tmp_path):
    # One image written byte by byte from the format description: channel
    # by channel, each channel column-major (x outer, y inner).
    img = np.zeros((96, 96, 3), np.uint8)
    img[10, 70, 0] = 200  # red dot in row 10, column 70
    img[80, 5, 2] = 100  # blue dot in row 80, column 5
    raw = bytearray()
    for c in range(3):
        for x in range(96):
            raw += bytes(img[:, x, c].tolist())
    (tmp_path / 'train_X.bin').write_bytes(bytes(raw))
    (tmp_path / 'train_y.bin').write_bytes(bytes([10]))  # truck
    ds = _build(dict(type='STL10', data_root=str(tmp_path)))
    info = ds.get_data_info(0)
    np.testing.assert_array_equal(info['img'], img)
    assert info['gt_label'] == 9 and ds.CLASSES[9] == 'truck'
    # The generator's writer is the same layout.
    write_stl10_bin(str(tmp_path / 'test'), img[None], [9])
    assert (tmp_path / 'test_X.bin').read_bytes() == bytes(raw)


def test_stl10_generator_and_the_config_pipeline(tmp_path):
    make_stl10_like(str(tmp_path), num_train=10, num_test=4)
    cfg = Config.fromfile(
        osp.join(CONFIGS, 'stl10', 'resnet32_e2e_1xb128-coslr-400e_stl10.py'))
    loader = cfg.train_dataloader
    loader.update(batch_size=4, num_workers=0, persistent_workers=False)
    loader.dataset.data_root = str(tmp_path)
    init_default_scope('mmpretrain')
    batch = next(iter(Runner.build_dataloader(loader)))
    assert batch['inputs'][0].shape == (3, 96, 96)  # crop 96, padding 12
    assert sorted(int(s.gt_label) for s in batch['data_samples'])[0] >= 0


def test_shapes_classification_folder(tmp_path):
    root = make_shapes_classification(str(tmp_path), 10, 5, seed=2)
    ds = _build(dict(type='CustomDataset', data_root=root,
                     data_prefix='train'))
    assert len(ds) == 10 and set(ds.CLASSES) == set(CLS_CLASSES)
    assert sorted(ds.get_gt_labels().tolist()) == sorted(
        [ds.CLASSES.index(CLS_CLASSES[i % 5]) for i in range(10)])
    # idempotent: a complete root is left as it is
    before = sorted(os.listdir(osp.join(root, 'train', 'disc')))
    make_shapes_classification(root, 50, 5, seed=3)
    assert sorted(os.listdir(osp.join(root, 'train', 'disc'))) == before


def test_missing_files_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match='test_32x32.mat'):
        _build(dict(type='SVHN', data_root=str(tmp_path), split='test'))
    with pytest.raises(ValueError, match='split must be one of'):
        _build(dict(type='STL10', data_root=str(tmp_path), split='extra'))


@pytest.mark.parametrize('config, missing', [
    ('cifar10/resnet32_e2e_1xb1024-coslr-400e_cifar10.py',
     'cifar-10-batches-py'),
    ('svhn/resnet110_man++-k55_1xb1024-coslr-400e_svhn.py',
     'train_32x32.mat'),
    ('stl10/resnet32_dgl-k8_1xb128-coslr-400e_stl10.py', 'train_X.bin'),
    ('imagenet/resnet101_man++-k4_8xb16-coslr-90e_in1k.py', 'train'),
])
def test_check_data_roots_names_the_missing_root_and_files(
        config, missing, tmp_path):
    cfg = Config.fromfile(osp.join(CONFIGS, config))
    loaders = ('train_dataloader', 'val_dataloader', 'test_dataloader')
    for name in loaders:
        cfg[name].dataset.data_root = str(tmp_path / 'nowhere')
    with pytest.raises(DatasetNotFoundError,
                       match=f'not found at "{tmp_path}/nowhere"'):
        check_data_roots(cfg)
    # The root exists but the official files do not.
    for name in loaders:
        cfg[name].dataset.data_root = str(tmp_path)
    path = osp.join(str(tmp_path), missing)
    with pytest.raises(DatasetNotFoundError, match=f'needs "{path}"'):
        check_data_roots(cfg)


def test_tools_train_stops_on_a_missing_dataset_naming_it(tmp_path):
    if osp.exists(osp.join(ROOT, 'data', 'svhn')):
        pytest.skip('data/svhn exists in this checkout')
    config = osp.join(CONFIGS, 'svhn',
                      'resnet32_man++-k16_1xb1024-coslr-400e_svhn.py')
    out = run_python('tools/train.py', config, '--work-dir', str(tmp_path))
    assert out.returncode != 0 and 'Traceback' not in out.stderr
    assert 'dataset not found at "data/svhn"' in out.stderr
    assert not os.listdir(str(tmp_path))  # nothing written
