"""Block plans over MMDet / MMSeg / MMPretrain backbones; clear errors."""
import pytest
import torch.nn as nn

from helpers import (build, det_batch, det_model_cfg, local_wrapper,
                     seg_batch, seg_model_cfg, vit_seg_model_cfg)
from mmman.local import PartitionError, build_block_plan


def _ends(plan):
    return [plan.units[e].name for e in plan.ends]


def test_even_split_of_resnet_units_larger_blocks_first():
    model = build('mmseg', seg_model_cfg())  # 8 basic blocks
    plan = build_block_plan(model, num_blocks=3)
    assert _ends(plan) == ['backbone.layer2.0', 'backbone.layer3.1']
    assert [len(plan.block_units(k)) for k in range(3)] == [3, 3, 2]
    assert plan.next_unit(0).name == 'backbone.layer2.1'


def test_r50_frozen_stage_split_matches_planning_calibration():
    # MMDet R50 with frozen_stages=1: 13 trainable units -> 4|3|3|3.
    cfg = det_model_cfg(frozen_stages=1, norm_eval=True)
    cfg['backbone'].update(depth=50, base_channels=8, stem_channels=8)
    cfg['neck']['in_channels'] = [32, 64, 128, 256]
    model = build('mmdet', cfg)
    plan = build_block_plan(model, num_blocks=4)
    sizes = [
        len([u for u in plan.block_units(k) if u.trainable])
        for k in range(4)
    ]
    assert sizes == [4, 3, 3, 3]
    # No block boundary (and so no aux net) in the frozen stem / layer1.
    assert all(plan.units[e].trainable for e in plan.ends)
    assert plan.block_units(0)[0].name == 'backbone.layer1.0'
    assert not plan.block_units(0)[0].trainable


def test_frozen_stages_with_norm_eval_train():
    model = build('mmdet', det_model_cfg(frozen_stages=1, norm_eval=True))
    wrapper = local_wrapper(model, method='man++', num_blocks=3)
    assert all('layer1' not in u for u in _ends(wrapper.plan))
    frozen = {n: p.clone() for n, p in model.named_parameters()
              if not p.requires_grad}
    model.train()
    model.train_step(det_batch(), wrapper)
    for n, p in model.named_parameters():
        if n in frozen:
            assert p.grad is None and (p == frozen[n]).all()
    # eta copies of a norm_eval source keep their BN in eval mode.
    for eta in wrapper.aux.etas:
        bns = [m for m in eta.copy.modules() if isinstance(m, nn.BatchNorm2d)]
        assert bns and not any(m.training for m in bns)


def test_explicit_boundaries_accept_short_and_full_names():
    model = build('mmseg', seg_model_cfg())
    plan = build_block_plan(
        model, boundaries=['layer2.1', 'backbone.layer3.0'])
    assert _ends(plan) == ['backbone.layer2.1', 'backbone.layer3.0']
    # layer1's and layer2's outputs come from finished block 1; layer3 ends
    # inside the last block.
    assert plan.finished_outputs() == [0, 1]


def test_dilated_resnetv1c_copies_keep_dilation():
    model = build('mmseg', seg_model_cfg())
    wrapper = local_wrapper(
        model, method='man++', boundaries=['layer3.0', 'layer4.0'])
    for k, eta in enumerate(wrapper.aux.etas):
        source = wrapper.plan.next_unit(k).module
        assert eta.copy.conv1.dilation == source.conv1.dilation
        assert eta.ema.module.conv2.dilation == source.conv2.dilation
    assert wrapper.plan.next_unit(1).module.conv1.dilation == (4, 4)


def test_vision_transformer_blocks():
    model = build('mmseg', vit_seg_model_cfg())
    wrapper = local_wrapper(model, method='man++', num_blocks=2,
                            aux_head=dict(type='ImageClassAuxHead'))
    assert _ends(wrapper.plan) == ['backbone.layers.1']
    assert wrapper.plan.next_unit(0).name == 'backbone.layers.2'
    assert wrapper.plan.finished_outputs() == [0]
    before = {n: p.clone() for n, p in model.named_parameters()}
    model.train_step(seg_batch(), wrapper)
    assert all(not (before[n] == p).all() for n, p in
               model.named_parameters() if n.startswith('backbone.layers.0'))
    assert wrapper.aux.etas[0].balance.s.shape == ()
    assert wrapper.aux.heads[0].embed[0].normalized_shape == (16, )


@pytest.mark.parametrize('kwargs, message', [
    (dict(num_blocks=9), 'more than the 8 trainable backbone units'),
    (dict(num_blocks=0), 'positive integer'),
    (dict(boundaries=['layer9.0']), 'is not a backbone unit'),
    (dict(boundaries=['layer4.1']), 'last block must keep'),
    (dict(boundaries=['layer3.0', 'layer2.0']), 'forward order'),
    (dict(num_blocks=2, boundaries=['layer2.0']), 'exactly one of'),
])
def test_impossible_partitions_fail_with_one_clear_message(kwargs, message):
    model = build('mmseg', seg_model_cfg())
    with pytest.raises(PartitionError, match=message):
        local_wrapper(model, method='dgl', **kwargs)


def test_more_blocks_than_trainable_units_with_frozen_stages():
    model = build('mmseg', seg_model_cfg(frozen_stages=3))
    with pytest.raises(PartitionError, match='more than the 2 trainable'):
        local_wrapper(model, method='man', num_blocks=3)
    with pytest.raises(PartitionError, match='frozen stage'):
        local_wrapper(model, method='man', boundaries=['layer1.1'])


def test_unknown_backbone_type_fails_clearly():
    model = build('mmseg', seg_model_cfg())
    model.backbone = nn.Sequential(nn.Conv2d(3, 64, 3))
    with pytest.raises(PartitionError, match='cannot partition a backbone '
                       'of type Sequential'):
        local_wrapper(model, method='man++', num_blocks=2)


def test_unknown_local_cfg_key_fails():
    model = build('mmseg', seg_model_cfg())
    with pytest.raises(ValueError, match='unknown keys'):
        local_wrapper(model, method='man++', num_block=2)
