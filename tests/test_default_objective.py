"""The one-field swap in a host config (no mmman snippet) gets the task's
dense local objective, the one mmman's own configs use."""
import pytest

from helpers import build, det_batch, local_wrapper, seg_batch
from model_cfgs import det_model_cfg, seg_model_cfg
from test_zoo_backbones import FAMILIES, cls_batch


@pytest.mark.parametrize('scope, cfg, batch, head, loss', [
    ('mmdet', det_model_cfg(), det_batch, 'DenseDetAuxHead',
     'loss_center_heatmap'),
    ('mmseg', seg_model_cfg(), seg_batch, 'DecodeAuxHead', 'loss_ce'),
    ('mmpretrain', FAMILIES['mobilenetv2'][1], cls_batch,
     'ImageClassAuxHead', 'loss_cls'),
])
def test_no_aux_head_means_the_tasks_dense_objective(scope, cfg, batch, head,
                                                     loss):
    model = build(scope, cfg)
    wrapper = local_wrapper(model, method='man++', num_blocks=2,
                            aux_head=None)
    assert [type(h).__name__ for h in wrapper.aux.heads] == [head]
    if head == 'DenseDetAuxHead':
        assert wrapper.aux.heads[0].loss_weight == 0.1  # configs' measured
    model.train_step(batch(), wrapper)
    assert f'train/local1_{loss}' in wrapper.message_hub.log_scalars


def test_classes_of_a_model_without_the_usual_heads():
    """LeNet keeps its classifier in the backbone, SOLO in its mask_head:
    the count the modules hold is taken (heads that disagree still raise,
    tests/test_cascade_heads.py)."""
    import torch.nn as nn

    from mmman.tasks import infer_num_classes
    model = nn.Module()
    model.backbone, model.mask_head = nn.Linear(1, 1), nn.Linear(1, 1)
    model.backbone.num_classes = model.mask_head.num_classes = 10
    assert infer_num_classes(model) == 10
    model.backbone.num_classes = model.mask_head.num_classes = 0
    with pytest.raises(ValueError, match='cannot infer num_classes'):
        infer_num_classes(model)


def test_another_constructors_paramwise_rules_are_named_in_the_log():
    """MMDet's layer-wise lr decay keys, which the local constructor taking
    the host constructor's place does not apply, are said in the log (the
    one-field swap keeps a host config's paramwise_cfg)."""
    from unittest import mock

    from mmengine.optim import build_optim_wrapper
    model = build('mmdet', det_model_cfg())
    with mock.patch('mmman.engine.constructor.print_log') as log:
        build_optim_wrapper(
            model,
            dict(type='LocalOptimWrapper',
                 constructor='LocalOptimWrapperConstructor',
                 optimizer=dict(type='AdamW', lr=1e-4),
                 paramwise_cfg=dict(decay_rate=0.7, decay_type='layer_wise',
                                    num_layers=6),
                 local_cfg=dict(method='man++', num_blocks=2)))
    said = ' '.join(str(c.args[0]) for c in log.call_args_list)
    assert "['decay_rate', 'decay_type', 'num_layers']" in said
    assert 'NOT applied' in said
