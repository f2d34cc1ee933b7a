"""``--amp`` picks the AMP twin of the wrapper a config builds, also when
the config leaves ``optim_wrapper.type`` out (issue 13, defect 8)."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from helpers import ROOT
from mmman.apis import amp_optim_wrapper, enable_amp, optim_wrapper_type
from mmman.engine import LocalOptimWrapper, LocalOptimWrapperConstructor

CONFIG = osp.join(ROOT, 'configs', 'demo',
                  'deeplabv3_r18-d8_man++-k4_300it_shapes-64x64.py')
SGD = dict(type='SGD', lr=0.01)


def _config_without_type():
    cfg = Config.fromfile(CONFIG)
    cfg.optim_wrapper.pop('type')  # LocalOptimWrapperConstructor's default
    return cfg


def test_local_config_without_type_becomes_local_amp():
    cfg = _config_without_type()
    assert optim_wrapper_type(cfg.optim_wrapper) == 'LocalOptimWrapper'
    amp_optim_wrapper(cfg)
    assert cfg.optim_wrapper.type == 'LocalAmpOptimWrapper'
    assert cfg.optim_wrapper.loss_scale == 'dynamic'
    assert cfg.optim_wrapper.local_cfg.method == 'man++'
    # The constructor accepts it (it refused 'AmpOptimWrapper' with
    # "TypeError ... not AmpOptimWrapper").
    LocalOptimWrapperConstructor(cfg.optim_wrapper)


@pytest.mark.parametrize('wrapper, wanted', [
    (dict(optimizer=SGD), 'AmpOptimWrapper'),
    (dict(type='OptimWrapper', optimizer=SGD), 'AmpOptimWrapper'),
    (dict(constructor='DefaultOptimWrapperConstructor', optimizer=SGD),
     'AmpOptimWrapper'),
    (dict(constructor='LocalOptimWrapperConstructor', optimizer=SGD),
     'LocalAmpOptimWrapper'),
    (dict(type='LocalOptimWrapper', optimizer=SGD), 'LocalAmpOptimWrapper'),
    (dict(type=LocalOptimWrapper, optimizer=SGD), 'LocalAmpOptimWrapper'),
])
def test_amp_twin_of_each_wrapper_form(wrapper, wanted):
    cfg = Config(dict(optim_wrapper=wrapper))
    amp_optim_wrapper(cfg)
    assert cfg.optim_wrapper.type == wanted
    assert cfg.optim_wrapper.loss_scale == 'dynamic'


def test_amp_keeps_an_amp_config_and_its_loss_scale():
    cfg = Config(dict(optim_wrapper=dict(
        type='LocalOptimWrapper', loss_scale=512.0, optimizer=SGD)))
    amp_optim_wrapper(cfg)
    assert cfg.optim_wrapper.loss_scale == 512.0
    before = cfg.optim_wrapper.to_dict()
    amp_optim_wrapper(cfg)
    assert cfg.optim_wrapper.to_dict() == before


def test_amp_of_an_unknown_wrapper_is_an_error():
    cfg = Config(dict(optim_wrapper=dict(type='OptimWrapperDict')))
    with pytest.raises(ValueError, match='cannot make OptimWrapperDict'):
        amp_optim_wrapper(cfg)


def test_enable_amp_needs_cuda_and_changes_nothing_without_it():
    cfg = _config_without_type()
    if torch.cuda.is_available():
        enable_amp(cfg)
        assert cfg.optim_wrapper.type == 'LocalAmpOptimWrapper'
        return
    with pytest.raises(RuntimeError, match='CUDA'):
        enable_amp(cfg)
    assert 'type' not in cfg.optim_wrapper
