"""The pretrained setting of the quality benchmarks: backbones pretrained as
MMPretrain classifiers load by name into MMSeg's DeepLabV3 and MMDet's
Faster R-CNN, stage 1 frozen, and only the trainable units form blocks."""
import copy
import importlib
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import MODELS, init_default_scope

import mmman  # noqa: F401

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
BENCH = osp.join(ROOT, 'configs', 'benchmarks')
CASES = [
    ('resnetv1c18-16ch', 'deeplabv3_r18-d8_man++-k4_1000it_shapes-bench'),
    ('resnet18-16ch', 'faster-rcnn_r18_fpn_man++-k4_600it_coco-shapes-bench'),
]


def _model(cfg):
    scope = cfg.get('default_scope')
    importlib.import_module(f'{scope}.utils').register_all_modules(False)
    init_default_scope(scope)
    return MODELS.build(copy.deepcopy(cfg.model))


@pytest.mark.parametrize('net,bench', CASES)
def test_pretrained_backbone_loads_by_name_and_stage1_is_frozen(
        net, bench, tmp_path):
    pre = Config.fromfile(
        osp.join(BENCH, 'pretrain', f'{net}_e2e_1500it_shapes-cls-64.py'))
    importlib.import_module('mmseg.models')
    importlib.import_module('mmdet.models')
    torch.manual_seed(1)
    classifier = _model(pre)
    ckpt = str(tmp_path / 'pretrained.pth')
    torch.save({'state_dict': classifier.state_dict()}, ckpt)

    cfg = Config.fromfile(
        osp.join(BENCH, 'pretrained', f'{bench}_pretrained.py'))
    assert cfg.model.backbone.frozen_stages == 1
    assert cfg.model.backbone.norm_eval is True
    assert cfg.model.backbone.init_cfg.checkpoint.startswith(
        'checkpoints/pretrain/')
    cfg.model.backbone.init_cfg.checkpoint = ckpt
    torch.manual_seed(2)
    model = _model(cfg)
    model.init_weights()
    loaded = model.backbone.state_dict()
    source = {
        k[len('backbone.'):]: v
        for k, v in classifier.state_dict().items()
        if k.startswith('backbone.')
    }
    assert set(source) == set(loaded)
    for key, value in source.items():
        assert torch.equal(loaded[key], value), key
    assert not any(p.requires_grad for p in model.backbone.layer1.parameters())
    assert all(p.requires_grad for p in model.backbone.layer2.parameters())
    model.train()
    assert not model.backbone.layer3[0].bn1.training  # norm_eval
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    names = [wrapper.plan.units[e].name for e in wrapper.plan.ends]
    assert names == ['backbone.layer2.1', 'backbone.layer3.1',
                     'backbone.layer4.0']  # 6 trainable units: 2, 2, 1, 1
