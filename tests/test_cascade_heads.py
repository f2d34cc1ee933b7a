"""Detectors and segmentors whose main head is a list of heads (Cascade
R-CNN's RoI stages) train with local learning by the one field."""
import pytest
import torch
from mmengine.config import Config

from helpers import build, det_batch, local_wrapper
from mmman.tasks import infer_num_classes
from model_cfgs import NUM_CLASSES


def _tiny_cascade_rcnn(tmp_path):
    """MMDet's own Cascade R-CNN config on a ResNet-18 with 8 channels."""
    path = tmp_path / 'cascade.py'
    path.write_text(
        "_base_ = 'mmdet::cascade_rcnn/cascade-rcnn_r50_fpn_1x_coco.py'\n")
    cfg = Config.fromfile(str(path))
    model = cfg.model
    model.backbone = dict(type='ResNet', depth=18, stem_channels=8,
                          base_channels=8, out_indices=(0, 1, 2, 3),
                          norm_cfg=dict(type='BN', requires_grad=True))
    model.neck.update(in_channels=[8, 16, 32, 64], out_channels=16)
    model.rpn_head.update(in_channels=16, feat_channels=16)
    model.roi_head.bbox_roi_extractor.out_channels = 16
    for stage in model.roi_head.bbox_head:
        stage.update(in_channels=16, fc_out_channels=32,
                     num_classes=NUM_CLASSES)
    return model


def test_cascade_rcnn_infers_classes_from_its_stages_and_trains(tmp_path):
    model = build('mmdet', _tiny_cascade_rcnn(tmp_path))
    assert len(model.roi_head.bbox_head) == 3
    assert infer_num_classes(model) == NUM_CLASSES
    plain_keys = list(model.state_dict())
    wrapper = local_wrapper(model, lr=0.01, method='man++', num_blocks=3,
                            aux_head=dict(type='DenseDetAuxHead',
                                          loss_weight=0.1))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    log_vars = model.train_step(det_batch(), wrapper)
    assert all(torch.isfinite(v).all() for v in log_vars.values())
    for k in (1, 2):
        assert f'train/local{k}_loss_center_heatmap' in \
            wrapper.message_hub.log_scalars
    moved = [n for n, p in model.named_parameters()
             if not torch.equal(p, before[n])]
    assert any(n.startswith('backbone.layer1') for n in moved)
    assert any(n.startswith('roi_head.bbox_head.2') for n in moved)
    assert list(model.state_dict()) == plain_keys


def test_heads_that_disagree_on_classes_ask_for_num_classes(tmp_path):
    cfg = _tiny_cascade_rcnn(tmp_path)
    cfg.roi_head.bbox_head[2].num_classes = NUM_CLASSES + 1
    model = build('mmdet', cfg)
    with pytest.raises(ValueError, match='cannot infer num_classes'):
        infer_num_classes(model)
