"""Every config under configs/ loads: its bases resolve and merge."""
import glob
import os.path as osp

from mmengine.config import Config

from helpers import ROOT
from mmman.local.balance import resolve_balance_cfg


def test_every_shipped_config_loads():
    paths = sorted(
        p for p in glob.glob(osp.join(ROOT, 'configs', '**', '*.py'),
                             recursive=True) if '/_base_/' not in p)
    assert len(paths) >= 100
    failed = {}
    for path in paths:
        try:
            cfg = Config.fromfile(path)
            local_cfg = cfg.get('optim_wrapper', {}).get('local_cfg') or {}
            resolve_balance_cfg(local_cfg.get('balance'))
        except Exception as error:  # collect them all, then report
            failed[osp.relpath(path, ROOT)] = f'{type(error).__name__}: ' \
                                              f'{str(error)[:200]}'
    assert not failed, failed
