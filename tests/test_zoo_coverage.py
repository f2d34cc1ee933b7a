"""tools/analysis_tools/zoo_coverage.py: one entry that trains, one that is
refused, the selection and the table."""
import importlib.util
import os.path as osp

import pytest

from helpers import one_thread  # noqa: F401  (autouse fixture)

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
RESNET18 = 'resnet/resnet18_8xb32_in1k.py'  # MMPretrain's, installed


@pytest.fixture(scope='module')
def tool():
    spec = importlib.util.spec_from_file_location(
        'zoo_coverage',
        osp.join(ROOT, 'tools', 'analysis_tools', 'zoo_coverage.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_entry_trains_below_e2e_and_loads_strictly(tool):
    rec = tool.run_entry('mmpretrain', RESNET18, img_scale=(32, 32))
    assert rec['status'] == 'ok', rec.get('error')
    assert rec['builds'] and rec['partitions'] and rec['trains']
    assert rec['strict'] is True
    assert rec['num_blocks'] == 4 and rec['trainable_units'] == 8
    assert rec['plan'].count('block ') == 4
    assert 0 < rec['local_saved'] < rec['e2e_saved']
    assert rec['loss_mismatch'] == []  # the forward is E2E's
    assert rec['saved_ratio'] < 1
    assert rec['e2e_finite'] and all(
        v == v for v in rec['local_losses'].values())  # no NaN


def test_segmentor_entry_keeps_the_forward_of_e2e(tool):
    # MMSeg's FCN heads (the model's and the local objectives) use dropout:
    # the model's losses match E2E's only if the auxiliary draws are undone.
    rec = tool.run_entry('mmseg',
                         'fcn/fcn_r18-d8_4xb2-80k_cityscapes-769x769.py',
                         img_scale=(64, 128))
    assert rec['status'] == 'ok', rec.get('error')
    assert rec['saved_ratio'] < 1 and rec['strict'] is True
    assert rec['loss_mismatch'] == []
    assert 'decode.loss_ce' in rec['local_losses']


def test_refusal_is_one_message_before_training(tool):
    rec = tool.run_entry('mmpretrain', RESNET18, img_scale=(32, 32),
                         cfg_options={'model.backbone.frozen_stages': 4})
    assert rec['builds'] and rec['status'] == 'refused'
    assert rec['partitions'] is False and rec['trains'] is None
    assert 'local_saved' not in rec
    err = rec['error']
    assert err['stage'] == 'partition' and err['origin'] == 'mmman'
    assert err['error'].startswith('PartitionError: ')
    assert 'frozen' in err['error']


def test_linear_probe_config_is_measured_unfrozen(tool, tmp_path):
    # A config file freezing every stage (MoCoV3's linear probe): the type
    # is measured trained, and the row says so.
    config = tmp_path / 'probe.py'
    config.write_text(
        f"_base_ = {osp.join(tool.config_root('mmpretrain'), RESNET18)!r}\n"
        "model = dict(backbone=dict(frozen_stages=4))\n")
    rec = tool.run_entry('mmpretrain', str(config), img_scale=(32, 32))
    assert rec['status'] == 'ok', rec.get('error')
    assert rec['trainable_units'] == 8
    assert 'frozen_stages=-1' in rec['adapted']
    assert tool._reason(rec).startswith(rec['adapted'])


def test_one_channel_fixed_size_classifier_trains(tool):
    # MNIST's LeNet-5: 1-channel images (its preprocessor's mean) of 32x32
    # (fixed by its classifier), which the trace also has to find.
    rec = tool.run_entry('mmpretrain', 'lenet/lenet5_mnist.py')
    assert rec['img_scale'] == [32, 32]
    assert rec['status'] == 'ok', rec.get('error')
    assert rec['num_blocks'] == 2 and rec['strict'] is True


def test_entry_that_does_not_build_is_told_apart(tool):
    rec = tool.run_entry('mmpretrain', RESNET18, img_scale=(32, 32),
                         cfg_options={'model.backbone.depth': 19})
    assert rec['status'] == 'does not build' and not rec['builds']
    assert rec['error']['stage'] == 'build'
    assert 'mmpretrain/models/backbones/resnet.py' in rec['error']['where']


def test_selection_prefers_dataset_own_folder_and_small_variants(tool):
    def info(config, dataset='CocoDataset', model='FCOS', backbone='ResNet',
             depth=50):
        return dict(host='mmdet', config=config, model=model,
                    backbone=backbone, head=None, dataset=dataset,
                    depth=depth)

    entries = tool.select_entries([
        info('fcos/fcos_r50_fpn_1x_voc.py', dataset='VOCDataset'),
        info('fcos/fcos_r101_fpn_1x_coco.py', depth=101),
        info('fcos/fcos_r50_fpn_1x_coco.py'),
        info('dcn/fcos_r18_dcn_1x_coco.py', depth=18),  # an extra
        info('retinanet/retinanet_r18_fpn_1x_coco.py', model='RetinaNet',
             depth=18),
        info('swin/fcos_swin-t_coco.py', backbone='SwinTransformer',
             depth=None),
        info('misc/fcos_swin-t_ms_coco.py', backbone='SwinTransformer',
             depth=None),
    ])
    chosen = {(e['kind'], e['type']): e['config'] for e in entries}
    assert chosen == {
        ('detector', 'FCOS'): 'fcos/fcos_r50_fpn_1x_coco.py',
        ('detector', 'RetinaNet'): 'retinanet/retinanet_r18_fpn_1x_coco.py',
        ('backbone', 'ResNet'): 'retinanet/retinanet_r18_fpn_1x_coco.py',
        ('backbone', 'SwinTransformer'): 'swin/fcos_swin-t_coco.py',
    }


def test_strict_load_failing_for_the_host_too_counts_as_e2e(tool):
    rec = dict(builds=True, partitions=True, trains=True, strict=False,
               saved_ratio=0.5, same_keys_as_e2e=True, e2e_strict=False)
    assert tool.status(rec) == 'ok'
    assert tool.status(dict(rec, same_keys_as_e2e=False)) == 'no strict load'
    assert tool.status(dict(rec, e2e_strict=True)) == 'no strict load'


def test_loss_mismatch_lists_changed_and_missing_losses(tool):
    assert tool.loss_mismatch({'loss': 2.0, 'acc': 50.0},
                              {'loss': 2.0001, 'acc': 50.0}) == []
    assert tool.loss_mismatch({'loss': 2.0, 'loss_cls': 1.0},
                              {'loss': 9.0}) == [['loss', 2.0, 9.0],
                                                 ['loss_cls', 1.0, None]]


def test_table_counts_builds_and_gives_every_reason(tool):
    entries = [
        dict(host='mmdet', kind='backbone', type='A', config='a.py'),
        dict(host='mmdet', kind='backbone', type='B', config='b.py'),
        dict(host='mmdet', kind='detector', type='C', config='a.py'),
        dict(host='mmdet', kind='detector', type='D', config='d.py'),
    ]
    ok = dict(builds=True, partitions=True, trains=True, strict=True,
              saved_ratio=0.5, num_blocks=4)
    records = {
        ('mmdet', 'a.py'): dict(ok, status='ok'),
        ('mmdet', 'b.py'): dict(
            builds=True, partitions=False, trains=None, strict=None,
            num_blocks=4, status='refused',
            error=dict(stage='partition', error='PartitionError: no units')),
        ('mmdet', 'd.py'): dict(
            builds=False, status='does not build',
            error=dict(stage='build', error='KeyError: x',
                       where='mmdet/models/x.py:3', origin='mmdet')),
    }
    text = tool.markdown(entries, records, 'python zoo_coverage.py')
    assert 'python zoo_coverage.py' in text
    assert ('| mmdet | backbone | 2 | 2 | 1 | 1 | 1 | 1 | 1 | 50% | 1 | 0 '
            '| 0 |') in text
    assert ('| mmdet | detector | 2 | 1 | 1 | 1 | 1 | 1 | 1 | 100% | 0 | 0 '
            '| 0 |') in text
    assert ('| B | `b.py` | 4 | no | – | – | – | PartitionError: no units '
            '|') in text
    assert ('does not build (host): KeyError: x at `mmdet/models/x.py:3`'
            in text)


def test_synthetic_edges_are_mmseg_generate_edge():
    import numpy as np
    import torch
    from mmseg.datasets.transforms import GenerateEdge

    from mmman.tasks.synthetic_batch import _blocky_labels, _edges
    label = _blocky_labels(64, 96, 5, torch.Generator().manual_seed(0))
    ref = GenerateEdge(edge_width=3)(dict(
        img_shape=(64, 96), gt_seg_map=label[0].numpy().astype(np.uint8)))
    ours = _edges(label)
    assert ours.shape == (1, 64, 96) and ours.sum() > 0
    assert (ours[0].numpy() == ref['gt_edge_map']).all()
