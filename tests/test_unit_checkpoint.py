"""``local_cfg.checkpoint``: units recompute their activations inside their
own block's backward, on any unit type, with the same gradients, BatchNorm
statistics and parameters as without, and fewer saved activations."""
import copy

import pytest
import torch
import torch.nn as nn
from mmengine.optim import build_optim_wrapper
from mmengine.runner import turn_on_activation_checkpointing
from torch.utils.checkpoint import checkpoint

from helpers import (build, det_batch, det_model_cfg, local_grads,
                     local_wrapper, one_thread, seg_batch,  # noqa: F401
                     seg_model_cfg, vit_seg_model_cfg)
from mmman.engine.unit_checkpoint import checkpoint_blocks, checkpointed_units
from mmman.utils import SavedTensorsMeter

DET_HEAD = dict(type='DenseDetAuxHead')


def _vit_cfg():
    cfg = vit_seg_model_cfg()
    cfg['backbone'].update(drop_rate=0.1, drop_path_rate=0.2)
    return cfg


def _swin_cfg():
    """MMSeg Swin (units found by the traced partition; each takes
    ``hw_shape``) with drop path."""
    return dict(
        type='EncoderDecoder',
        data_preprocessor=dict(type='SegDataPreProcessor', mean=[127.5] * 3,
                               std=[127.5] * 3, size=(64, 64),
                               seg_pad_val=255),
        backbone=dict(type='SwinTransformer', pretrain_img_size=64,
                      embed_dims=16, depths=(2, 2, 2, 2),
                      num_heads=(1, 2, 2, 4), window_size=4,
                      drop_path_rate=0.2, out_indices=(0, 1, 2, 3)),
        decode_head=dict(type='FCNHead', in_channels=128, in_index=3,
                         channels=8, num_convs=1, concat_input=False,
                         num_classes=4, align_corners=False,
                         loss_decode=dict(type='CrossEntropyLoss')),
        train_cfg=dict(), test_cfg=dict(mode='whole'))


def _convnext_cfg():
    """MMPretrain ConvNeXt (stages and blocks found by the traced
    partition) with drop path."""
    return dict(
        type='ImageClassifier',
        data_preprocessor=dict(type='ClsDataPreprocessor', mean=[127.5] * 3,
                               std=[127.5] * 3, num_classes=4),
        backbone=dict(type='ConvNeXt', drop_path_rate=0.2,
                      arch=dict(depths=[1, 1, 2, 1],
                                channels=[8, 16, 32, 64])),
        head=dict(type='LinearClsHead', num_classes=4, in_channels=64,
                  loss=dict(type='CrossEntropyLoss')))


def _cls_batch(size=64):
    from test_cls_partition import cls_batch
    return cls_batch(size=size, num_classes=4)


MODELS = {
    # ResNet-18 RetinaNet: BasicBlock units
    'det_basicblock': ('mmdet', det_model_cfg, det_batch, DET_HEAD),
    # dilated ResNetV1c-18 ASPP: BasicBlock with dilation
    'seg_resnetv1c': ('mmseg', seg_model_cfg, seg_batch, None),
    # ViT layers with dropout and drop path (the RNG must be replayed)
    'seg_vit': ('mmseg', _vit_cfg, seg_batch, None),
    'seg_swin': ('mmseg', _swin_cfg, seg_batch, None),
    'cls_convnext': ('mmpretrain', _convnext_cfg, _cls_batch, None),
}


def _wrapper(model, head, method='man++', **local_cfg):
    if head is not None:
        local_cfg['aux_head'] = head
    return local_wrapper(model, method=method, **local_cfg)


def _modules_with_instance_forward(model):
    return [n for n, m in model.named_modules() if 'forward' in vars(m)]


@pytest.mark.parametrize('name,method,ckpt', [
    ('det_basicblock', 'man++', 'all'),
    ('seg_resnetv1c', 'man++', 'all'),
    ('seg_vit', 'man++', 'all'),
    ('seg_swin', 'man++', 'all'),
    ('cls_convnext', 'man++', [2, 3]),
    # MLAAN's cascade runs checkpointed block 2 with frozen BN statistics
    ('seg_resnetv1c', 'mlaan', 'all'),
    ('seg_resnetv1c', 'mlaan', [1]),
])
def test_checkpointed_blocks_give_the_same_gradients_stats_and_step(
        name, method, ckpt):
    scope, cfg, make_batch, head = MODELS[name]
    batch = make_batch()
    runs = []
    for value in (None, ckpt):
        model = build(scope, cfg())
        wrapper = _wrapper(model, head, method, num_blocks=3,
                           checkpoint=value)
        grads = local_grads(model, wrapper, batch)
        wrapper.zero_grad()
        torch.manual_seed(1)
        model.train_step(copy.deepcopy(batch), wrapper)
        runs.append((grads, model.state_dict(), wrapper.aux.state_dict()))
    (g0, s0, a0), (g1, s1, a1) = runs
    assert g0.keys() == g1.keys()
    assert any(g.abs().sum() > 0 for g in g0.values())
    for key in g0:
        torch.testing.assert_close(g1[key], g0[key], rtol=1e-5, atol=1e-7,
                                   msg=f'gradient of {key}')
    stats = [k for k in s0 if 'running_' in k or 'num_batches' in k]
    assert stats or name in ('seg_vit', 'seg_swin', 'cls_convnext')
    for key in s0:  # parameters after the step and BN statistics
        torch.testing.assert_close(s1[key], s0[key], rtol=1e-5, atol=1e-7,
                                   msg=f'{key} after a step')
    for key in a0:  # eta copies, heads, EMA copies
        torch.testing.assert_close(a1[key], a0[key], rtol=1e-5, atol=1e-7,
                                   msg=f'aux {key} after a step')


def test_bn_statistics_move_once_per_step():
    """Without restoring them the recomputation would move them twice."""
    model = build('mmdet', det_model_cfg())
    wrapper = _wrapper(model, DET_HEAD, num_blocks=3, checkpoint='all')
    bn = model.backbone.layer2[0].bn1
    before = bn.num_batches_tracked.item()
    model.train_step(det_batch(), wrapper)
    assert bn.num_batches_tracked.item() == before + 1


class _Counting(nn.Module):
    """A unit with a BatchNorm in training mode, one in eval mode (its
    running statistics are saved for backward) and a buffer its forward
    writes in place."""

    def __init__(self):
        super().__init__()
        self.train_bn, self.eval_bn = nn.BatchNorm2d(3), nn.BatchNorm2d(3)
        self.register_buffer('calls', torch.zeros(()))

    def forward(self, x):
        self.calls += 1
        return self.eval_bn(self.train_bn(x).relu())


def test_recomputation_restores_buffers_without_a_host_sync():
    """The recomputed forward moves no buffer a second time, and finding
    what it moved reads nothing back to the host (``torch.equal`` per
    buffer waited for the GPU: 57 reads per Faster R-CNN MAN++ K=4 step)."""
    from mmman.utils import DispatchCounter
    from mmman.utils.recompute import checkpointed
    torch.manual_seed(0)
    unit = _Counting().train()
    unit.eval_bn.eval()
    unit.eval_bn.running_mean.normal_()
    plain = copy.deepcopy(unit)
    x = torch.randn(2, 3, 4, 4, requires_grad=True)
    plain(x).square().sum().backward()
    y = checkpointed(unit, unit.forward)(x.detach().requires_grad_())
    with DispatchCounter() as counter:
        y.square().sum().backward()
    assert counter.ops['aten.native_batch_norm'] == 2  # it did recompute
    assert counter.host_syncs == 0
    for (name, a), b in zip(plain.state_dict().items(),
                            unit.state_dict().values()):
        assert torch.equal(a, b), name  # moved once, as without recompute


def _saved_peak(model, wrapper, batch):
    with SavedTensorsMeter() as meter:
        model.train_step(copy.deepcopy(batch), wrapper)
    return meter.peak_bytes


@pytest.mark.parametrize('name', ['det_basicblock', 'seg_resnetv1c'])
def test_checkpointing_saves_fewer_activations(name):
    scope, cfg, make_batch, head = MODELS[name]
    batch = make_batch(size=128)
    peaks = {}
    for ckpt in (None, [1], 'all'):
        model = build(scope, cfg())
        wrapper = _wrapper(model, head, num_blocks=3, checkpoint=ckpt)
        peaks[str(ckpt)] = _saved_peak(model, wrapper, batch)
    assert peaks['all'] < 0.9 * peaks['None'], peaks
    assert peaks['all'] <= peaks['[1]'] <= peaks['None'], peaks


def _units(n=4, channels=16):
    torch.manual_seed(0)
    return nn.Sequential(*[
        nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.BatchNorm2d(channels), nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1)) for _ in range(n)
    ])


def test_meter_counts_recomputed_activations_like_reentrant_checkpoint():
    """Non-reentrant checkpoint recomputes under hooks of its own; the meter
    must still see those tensors, as it sees a reentrant recomputation."""
    units = _units()
    x = torch.randn(2, 16, 32, 32, requires_grad=True)
    with SavedTensorsMeter() as reentrant:
        h = x
        for unit in units:
            h = checkpoint(unit, h, use_reentrant=True)
        h.sum().backward()
    with SavedTensorsMeter() as ours:
        with checkpointed_units(list(units)):
            h = units(x)
        forward_only = ours.current_bytes
        h.sum().backward()
    act = 2 * 16 * 32 * 32 * 4
    assert forward_only == 3 * act  # the inputs of units 2..4
    assert ours.peak_bytes == reentrant.peak_bytes > forward_only
    assert ours.current_bytes == 0


def test_resnet18_detector_trains_checkpointed_and_saves_memory_vs_e2e():
    batch = det_batch(size=128)
    e2e = build('mmdet', det_model_cfg())
    e2e_wrapper = build_optim_wrapper(
        e2e, dict(type='OptimWrapper',
                  optimizer=dict(type='SGD', lr=0.01, momentum=0.9)))
    assert e2e.backbone.depth == 18
    peaks = {'e2e': _saved_peak(e2e, e2e_wrapper, batch)}
    for ckpt in (None, 'all'):
        model = build('mmdet', det_model_cfg())
        wrapper = _wrapper(model, DET_HEAD, num_blocks=4, checkpoint=ckpt)
        start = copy.deepcopy(model.state_dict())
        peaks[str(ckpt)] = _saved_peak(model, wrapper, batch)
        log_vars = model.train_step(det_batch(size=128, seed=1), wrapper)
        assert all(torch.isfinite(torch.as_tensor(v)).all()
                   for v in log_vars.values())
        moved = [k for k, v in model.state_dict().items()
                 if 'layer1.0.conv1' in k and not torch.equal(v, start[k])]
        assert moved, 'block 1 did not train'
    assert peaks['all'] < peaks['None'] < peaks['e2e'], peaks


def test_between_steps_the_model_is_the_plain_model():
    model = build('mmdet', det_model_cfg())
    wrapper = _wrapper(model, DET_HEAD, num_blocks=3, checkpoint='all')
    units = [u.module for u in wrapper.plan.units]
    inside = []
    with wrapper.optim_context(model):
        inside = _modules_with_instance_forward(model)
    # armed inside the step: the units, and the neck with the last block
    assert inside == [u.name for u in wrapper.plan.units] + ['neck']
    model.train_step(det_batch(), wrapper)
    assert _modules_with_instance_forward(model) == []
    assert all(u.forward.__func__ is type(u).forward for u in units)
    plain = build('mmdet', det_model_cfg(), seed=1)
    plain.load_state_dict(model.state_dict(), strict=True)
    clone = copy.deepcopy(model)
    assert _modules_with_instance_forward(clone) == []


def test_an_instance_forward_of_the_host_is_wrapped_and_put_back():
    """MMEngine's ``activation_checkpointing`` sets an instance forward."""
    units = _units(2)
    turn_on_activation_checkpointing(units, ['0'])
    host = units[0].forward
    with checkpointed_units(list(units)):
        assert units[0].forward is not host
        units(torch.randn(1, 16, 8, 8, requires_grad=True)).sum().backward()
    assert units[0].forward is host
    assert 'forward' not in vars(units[1])


def _swin_block():
    from mmseg.models.backbones.swin import SwinBlock
    return SwinBlock(embed_dims=16, num_heads=2, feedforward_channels=32,
                     window_size=4, shift=True, drop_rate=0.1,
                     drop_path_rate=0.2)


def _convnext_block():
    from mmpretrain.models.backbones.convnext import ConvNeXtBlock
    return ConvNeXtBlock(in_channels=16, drop_path_rate=0.2)


@pytest.mark.parametrize('make,args,kwargs', [
    (_swin_block, lambda: (torch.randn(2, 64, 16), ), lambda: dict(
        hw_shape=(8, 8))),  # extra keyword argument, window shift
    (_swin_block, lambda: (torch.randn(2, 64, 16), (8, 8)), dict),
    (_convnext_block, lambda: (torch.randn(2, 16, 8, 8), ), dict),
])
def test_any_unit_type_recomputes_to_the_same_gradients(make, args, kwargs):
    torch.manual_seed(0)
    unit = make().train()
    x, *rest = args()
    kw = kwargs()
    grads = []
    for ckpt in (False, True):
        unit.zero_grad()
        inp = x.clone().requires_grad_()
        torch.manual_seed(3)
        if ckpt:
            with checkpointed_units([unit]):
                out = unit(inp, *rest, **kw)
        else:
            out = unit(inp, *rest, **kw)
        out.square().sum().backward()
        grads.append([inp.grad] + [p.grad.clone() for p in unit.parameters()])
    for plain, ours in zip(*grads):
        torch.testing.assert_close(ours, plain, rtol=1e-5, atol=1e-7)


def test_num_blocks_1_checkpoints_end_to_end():
    batch = det_batch(size=96)
    peaks, states = {}, {}
    for ckpt in (None, 'all'):
        model = build('mmdet', det_model_cfg())
        wrapper = _wrapper(model, DET_HEAD, num_blocks=1, checkpoint=ckpt)
        torch.manual_seed(1)
        peaks[ckpt] = _saved_peak(model, wrapper, batch)
        states[ckpt] = model.state_dict()
    assert peaks['all'] < peaks[None]
    for key in states[None]:
        torch.testing.assert_close(states['all'][key], states[None][key],
                                   rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize('value,match', [
    ('some', "None, 'all' or a list"),
    (True, "None, 'all' or a list"),
    (2, "None, 'all' or a list"),
    ([1.5], "None, 'all' or a list"),
    ([0], r'numbered 1\.\.K; \[0\] is out of range'),  # before planning
    ([2, 4], r'numbered 1\.\.3 \(K=3\); \[4\] is out of range'),
    ([2, 2], 'names a block twice'),
])
def test_bad_checkpoint_values_stop_at_construction(value, match):
    model = build('mmdet', det_model_cfg())
    with pytest.raises(ValueError, match=match):
        _wrapper(model, DET_HEAD, num_blocks=3, checkpoint=value,
                 take_copies=False)


def test_checkpoint_needs_local_blocks():
    model = build('mmdet', det_model_cfg())
    with pytest.raises(ValueError, match="method='e2e'"):
        local_wrapper(model, method='e2e', checkpoint='all',
                      take_copies=False)


def test_checkpoint_blocks_resolves_to_zero_based_indices():
    assert checkpoint_blocks(None, 4) == ()
    assert checkpoint_blocks('all', 4) == (0, 1, 2, 3)
    assert checkpoint_blocks((3, 1), 4) == (0, 2)
    assert checkpoint_blocks([5]) == (4, )  # K unknown: type check only


def _ddp_worker(rank, world, port, out_dir):
    import os
    import torch.distributed as dist
    from mmengine.model import MMDistributedDataParallel
    from test_ddp import _make_wrapper, _model, _shard, _state
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    dist.init_process_group('gloo', rank=rank, world_size=world)
    torch.set_num_threads(1)
    model = _model('GN', seed=100 + rank)  # ranks start different
    ddp = MMDistributedDataParallel(module=model)
    wrapper = _make_wrapper(ddp, 'GN', checkpoint='all')
    for step in range(2):
        ddp.train_step(_shard(step, rank, world), wrapper)
    torch.save(_state(model, wrapper), os.path.join(out_dir, f'{rank}.pth'))
    dist.destroy_process_group()


def test_ddp_with_checkpointed_blocks_equals_one_process(tmp_path):
    import torch.multiprocessing as mp
    from helpers import free_port
    from test_ddp import _make_wrapper, _model, _shard, _state
    mp.spawn(_ddp_worker, args=(2, free_port(), str(tmp_path)), nprocs=2,
             join=True)
    model = _model('GN', seed=100)
    wrapper = _make_wrapper(model, 'GN')  # not checkpointed
    for step in range(2):
        model.train_step(_shard(step, 0, 1), wrapper)
    single = _state(model, wrapper)
    ranks = [torch.load(tmp_path / f'{r}.pth') for r in range(2)]
    for key, value in single.items():
        assert torch.equal(ranks[0][key], ranks[1][key]), key
        torch.testing.assert_close(ranks[0][key], value, rtol=1e-4,
                                   atol=1e-6, msg=key)


def test_checkpointing_is_no_part_of_the_resume_signature():
    """Turning it on or off does not change the maths: a run resumes."""
    plain = _wrapper(build('mmdet', det_model_cfg()), DET_HEAD, num_blocks=3)
    other = _wrapper(build('mmdet', det_model_cfg()), DET_HEAD, num_blocks=3,
                     checkpoint=[2])
    other.load_state_dict(plain.state_dict())


def test_autocast_recomputes_in_the_precision_of_the_forward():
    """The recomputation runs in backward, outside ``autocast``; checkpoint
    replays the forward's autocast state (the same holds for CUDA AMP)."""
    units = _units(2)
    x = torch.randn(2, 16, 16, 16)
    grads = []
    for ckpt in (False, True):
        units.zero_grad()
        with torch.autocast('cpu', dtype=torch.bfloat16):
            with checkpointed_units(list(units) if ckpt else []):
                out = units(x)
        assert out.dtype == torch.bfloat16
        out.float().square().sum().backward()
        grads.append([p.grad.clone() for p in units.parameters()])
    for plain, ours in zip(*grads):
        torch.testing.assert_close(ours, plain, rtol=0, atol=0)


def _brute_force_checkpointed(costs, inputs, stem, tail, k, branches,
                              checkpointed):
    import itertools
    n, best = len(costs), None
    for cuts in itertools.combinations(range(1, n), k - 1):
        bounds = (0, ) + cuts + (n, )
        worst = 0
        for j in range(k):
            a, b = bounds[j], bounds[j + 1]
            extra = tail if j == k - 1 else branches * costs[b]
            base = stem if a == 0 else 0
            if j in checkpointed:
                cost = base + sum(inputs[a:b]) + max(extra, max(costs[a:b]))
            else:
                cost = base + sum(costs[a:b]) + extra
            worst = max(worst, cost)
        best = worst if best is None else min(best, worst)
    return best


def test_balance_costs_checkpointed_blocks_by_their_inputs():
    """The split minimises the largest block where checkpointed blocks cost
    their units' inputs plus the larger of eta (tail) and one unit."""
    from mmman.local.balance import balanced_ends
    from mmman.local.partition import Unit
    gen = torch.Generator().manual_seed(0)
    units = [Unit(f'u{i}', nn.Identity(), True) for i in range(9)]
    for _ in range(20):
        costs = torch.randint(20, 100, (9, ), generator=gen).tolist()
        inputs = [c // 4 for c in costs]
        stem, tail = torch.randint(0, 200, (2, ), generator=gen).tolist()
        for k, branches, ckpt in ((2, 0, (0, 1)), (3, 2, (0, 1, 2)),
                                  (4, 2, (1, 3))):
            ends = balanced_ends(units, costs, stem, tail, k, branches,
                                 inputs, ckpt)
            bounds = [0] + [e + 1 for e in ends] + [9]
            got = max(
                (stem if j == 0 else 0) +
                (sum(inputs[bounds[j]:bounds[j + 1]]) + max(
                    tail if j == k - 1 else branches * costs[bounds[j + 1]],
                    max(costs[bounds[j]:bounds[j + 1]])) if j in ckpt else
                 sum(costs[bounds[j]:bounds[j + 1]]) +
                 (tail if j == k - 1 else branches * costs[bounds[j + 1]]))
                for j in range(k))
            assert got == _brute_force_checkpointed(costs, inputs, stem,
                                                    tail, k, branches, ckpt)


def test_balanced_split_with_checkpointing_is_its_own_plan(tmp_path):
    """Balance costs the checkpointed blocks as checkpointed: another
    cache entry, measured inputs, a plan that trains."""
    import json
    from mmman.local.plan_cache import CACHE_FILE
    for ckpt in (None, 'all'):
        model = build('mmdet', det_model_cfg())
        wrapper = _wrapper(model, DET_HEAD, num_blocks=4, checkpoint=ckpt,
                           balance=dict(img_scale=(128, 128),
                                        cache_dir=str(tmp_path)))
        model.train_step(det_batch(size=128), wrapper)
    with open(tmp_path / CACHE_FILE) as f:
        assert len(json.load(f)) == 2
