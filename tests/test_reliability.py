"""Engine reliability: non-finite local losses, per-block clipping, AMP skips
(CPU GradScaler), balance validation, paramwise_cfg on the eta copies."""
import copy
import math
from unittest import mock

import pytest
import torch
from mmengine.logging import MessageHub
from mmengine.optim import build_optim_wrapper

from helpers import build, local_wrapper, seg_batch, seg_model_cfg
from mmman.engine import NonFiniteLocalLossError
from mmman.local import PartitionError


def _model(seed=0):
    cfg = seg_model_cfg()
    cfg['decode_head']['dropout_ratio'] = 0.0
    cfg['auxiliary_head']['dropout_ratio'] = 0.0
    model = build('mmseg', cfg, seed=seed)
    model.train()
    return model


def _params(model, wrapper):
    """Every parameter: the model's and the auxiliary networks' (eta' and
    eta'' copies, scaling biases, heads)."""
    params = {f'model.{k}': v.detach().clone()
              for k, v in model.named_parameters()}
    params.update({f'aux.{k}': v.detach().clone()
                   for k, v in wrapper.aux.named_parameters()})
    return params


def _assert_unchanged(before, after):
    for key, value in before.items():
        torch.testing.assert_close(
            after[key], value, rtol=0, atol=0, equal_nan=True, msg=key)


def _head_bias(wrapper, k):
    return wrapper.aux.heads[k].fc[-1].bias


# ----------------------------------------------------- non-finite loss
def test_nan_local_loss_stops_before_any_parameter_changes():
    model = _model()
    wrapper = local_wrapper(model, lr=0.1, method='man++', num_blocks=3)
    model.train_step(seg_batch(seed=0), wrapper)  # a normal step first
    with torch.no_grad():
        _head_bias(wrapper, 0).fill_(float('nan'))
    before = _params(model, wrapper)
    wrapper.message_hub.update_info('iter', 6)
    with pytest.raises(NonFiniteLocalLossError) as err:
        model.train_step(seg_batch(seed=1), wrapper)
    msg = str(err.value)
    assert 'block 1 ' in msg and 'iteration 7' in msg
    assert 'loss_cls=nan' in msg
    _assert_unchanged(before, _params(model, wrapper))


# ------------------------------------------------------ clip per block
def _one_clipped_step(block1_weight, clip):
    model = _model()
    heads = [
        dict(type='ImageClassAuxHead', loss_weight=block1_weight),
        dict(type='ImageClassAuxHead')
    ]
    wrapper = build_optim_wrapper(
        model,
        dict(
            type='LocalOptimWrapper',
            constructor='LocalOptimWrapperConstructor',
            optimizer=dict(type='SGD', lr=0.1),
            clip_grad=clip,
            local_cfg=dict(method='man++', num_blocks=3, aux_head=heads)))
    wrapper.take_copies()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    model.train_step(seg_batch(seed=0), wrapper)
    moved = {n: p.detach() - before[n] for n, p in model.named_parameters()}
    return model, wrapper, moved


def test_clip_grad_is_per_block():
    clip = dict(max_norm=0.5)
    model, wrapper, base = _one_clipped_step(1.0, clip)
    _, _, loud = _one_clipped_step(1000.0, clip)
    last = [n for n in base if n.startswith(('decode_head', 'backbone.layer4'))]
    assert last
    for n in last:  # block 1's weight does not reach the last block's step
        torch.testing.assert_close(loud[n], base[n], rtol=1e-5, atol=1e-8)
    first = [n for n in base if n.startswith('backbone.layer1')]
    assert any(not torch.allclose(loud[n], base[n]) for n in first)
    # Each group's norm was clipped on its own and is logged.
    hub = MessageHub.get_current_instance()
    for key in ('train/local1_grad_norm', 'train/local2_grad_norm',
                'train/grad_norm'):
        assert key in hub.log_scalars, key
    groups = wrapper.block_groups[:-1]
    assert len(groups) == 2
    assert {id(p) for p in wrapper.aux.heads[0].parameters()} <= {
        id(p) for p in groups[0]}
    assert {id(p) for p in model.backbone.stem.parameters()} <= {
        id(p) for p in groups[0]}


# -------------------------------------------------------------- AMP
def _amp_wrapper(model, init_scale, clip=None, **local):
    """LocalAmpOptimWrapper on CPU with a CPU GradScaler."""
    target = 'mmengine.optim.optimizer.amp_optimizer_wrapper.'
    with mock.patch(target + 'is_cuda_available', return_value=True):
        wrapper = build_optim_wrapper(
            model,
            dict(
                type='LocalAmpOptimWrapper',
                constructor='LocalOptimWrapperConstructor',
                optimizer=dict(type='SGD', lr=0.1),
                clip_grad=clip,
                local_cfg=dict(method='man', num_blocks=3,
                               aux_head=dict(type='ImageClassAuxHead'),
                               **local)))
    wrapper.loss_scaler = torch.amp.GradScaler(
        'cpu', init_scale=init_scale, growth_interval=1000)
    wrapper.take_copies()
    return wrapper


def _grads(model, wrapper):
    return {
        n: p.grad.clone()
        for n, p in list(model.named_parameters()) +
        [(f'aux.{n}', p) for n, p in wrapper.aux.named_parameters()]
        if p.grad is not None
    }


def test_amp_local_losses_share_the_loss_scale():
    runs = {}
    for scale in (1.0, 1024.0):
        model = _model()
        wrapper = _amp_wrapper(model, scale)
        with wrapper.optim_context(model):
            data = model.data_preprocessor(seg_batch(seed=0), True)
            losses = model(**data, mode='loss')
        wrapper.backward(model.parse_losses(losses)[0])
        runs[scale] = (_grads(model, wrapper), model, wrapper)
    one, big = runs[1.0][0], runs[1024.0][0]
    assert one.keys() == big.keys()
    assert any(k.startswith('backbone.layer1') for k in one)
    assert any(k.startswith('aux.blocks.0.head.') for k in one)
    for k in one:  # local and model gradients alike carry the scale
        torch.testing.assert_close(big[k], one[k] * 1024.0, msg=k)
    # ... and unscaled steps land on the same parameters.
    for _, model, wrapper in runs.values():
        wrapper.step()
    (m1, w1), (m2, w2) = [(r[1], r[2]) for r in runs.values()]
    for (n, p), q in zip(m1.named_parameters(), m2.parameters()):
        torch.testing.assert_close(p, q, msg=n)


@pytest.mark.parametrize('poison', ['nan', 'inf'])
def test_amp_overflow_skips_step_and_ema_and_reports_runs(poison):
    """nan: the local gradients are non-finite, the scaler finds them;
    inf: the local loss is NaN but its gradients are finite."""
    model = _model()
    wrapper = _amp_wrapper(model, 1024.0, clip=dict(max_norm=1.0))
    wrapper.max_skipped_steps = 3
    model.train_step(seg_batch(seed=0), wrapper)  # a normal step first
    steps = [int(e.ema.steps) for e in wrapper.aux.etas]
    with torch.no_grad():
        _head_bias(wrapper, 0).fill_(float(poison))
    before = _params(model, wrapper)
    with mock.patch('mmman.engine.optim_wrapper.print_log') as log:
        for i in range(3):
            scale = wrapper.loss_scaler.get_scale()
            model.train_step(seg_batch(seed=1 + i), wrapper)  # no raise
            assert wrapper.loss_scaler.get_scale() == scale / 2
    _assert_unchanged(before, _params(model, wrapper))
    assert [int(e.ema.steps) for e in wrapper.aux.etas] == steps
    warned = [c[0][0] for c in log.call_args_list
              if 'skipped the last 3' in c[0][0]]
    assert len(warned) == 1 and 'block 1: loss_cls=nan' in warned[0]
    hub = MessageHub.get_current_instance()
    assert hub.get_scalar('train/skipped_steps').current() == 3
    # Healthy again: the next step is taken and the EMA moves.
    with torch.no_grad():
        _head_bias(wrapper, 0).zero_()
    model.train_step(seg_batch(seed=9), wrapper)
    assert [int(e.ema.steps) for e in wrapper.aux.etas] == [
        s + 1 for s in steps]


# -------------------------------------------------- balance validation
@pytest.mark.parametrize('local, message', [
    (dict(num_blocks=0), 'num_blocks must be a positive integer'),
    (dict(num_blocks=9), 'num_blocks=9 is more than the 8 trainable'),
])
def test_balance_validates_like_the_even_split(local, message):
    model = _model()
    for extra in ({}, dict(balance=dict(img_scale=(64, 64)))):
        with pytest.raises(PartitionError, match=message):
            local_wrapper(model, method='man++', **local, **extra)


def test_balance_and_boundaries_exclude_each_other():
    with pytest.raises(PartitionError, match='not both'):
        local_wrapper(
            _model(),
            method='man++',
            boundaries=['layer2.0'],
            balance=dict(img_scale=(64, 64)))


# --------------------------------------------------------- paramwise
@pytest.mark.parametrize('paramwise', [
    dict(custom_keys={'backbone': dict(lr_mult=0.1, decay_mult=0.5)}),
    dict(norm_decay_mult=0.0),
])
def test_paramwise_cfg_reaches_the_eta_copies(paramwise):
    model = _model()
    wrapper = build_optim_wrapper(
        model,
        dict(
            type='LocalOptimWrapper',
            constructor='LocalOptimWrapperConstructor',
            optimizer=dict(type='SGD', lr=0.1, weight_decay=1e-4),
            paramwise_cfg=paramwise,
            local_cfg=dict(method='man++', num_blocks=3,
                           aux_head=dict(type='ImageClassAuxHead'))))
    setting = {id(p): (g['lr'], g['weight_decay'])
               for g in wrapper.optimizer.param_groups for p in g['params']}
    for k, eta in enumerate(wrapper.aux.etas):
        source = wrapper.plan.next_unit(k).module
        for (n, p), q in zip(eta.copy.named_parameters(),
                             source.parameters()):
            assert setting[id(p)] == setting[id(q)], n
    eta = wrapper.aux.etas[0]
    if 'custom_keys' in paramwise:
        assert setting[id(eta.copy.conv1.weight)] == pytest.approx(
            (0.01, 5e-5))
    else:
        assert setting[id(eta.copy.bn1.weight)][1] == 0.0
    assert setting[id(wrapper.aux.heads[0].fc[0].weight)] == pytest.approx(
        (0.1, 1e-4))
    # every trainable aux parameter is in exactly one group, eta'' in none
    ids = [id(p) for g in wrapper.optimizer.param_groups for p in g['params']]
    assert len(ids) == len(set(ids))
    assert {id(p) for p in wrapper.aux.parameters() if p.requires_grad} <= \
        set(ids)
    assert not {id(p) for p in eta.ema.parameters()} & set(ids)


def test_block_params_copy_is_not_deepcopy_of_wrapper():
    """Between steps the model carries no hook of the wrapper, so a deep copy
    (MMEngine's EMAHook) is the plain model: no auxiliary module, no hook,
    the plain model's state and outputs."""
    from mmman.local import LocalAuxiliary, MomentumAuxNet
    model = _model()
    wrapper = local_wrapper(model, method='man++', num_blocks=3)
    model.train_step(seg_batch(), wrapper)
    hooks = [m for m in model.modules()
             if m._forward_hooks or m._forward_pre_hooks]
    assert not hooks
    clone = copy.deepcopy(model)
    assert not [m for m in clone.modules()
                if isinstance(m, (LocalAuxiliary, MomentumAuxNet))]
    assert not [m for m in clone.modules()
                if m._forward_hooks or m._forward_pre_hooks]
    assert list(clone.state_dict()) == list(model.state_dict())
    model.eval()
    clone.eval()
    data = model.data_preprocessor(seg_batch(seed=2), False)
    with torch.no_grad():
        torch.testing.assert_close(
            clone(data['inputs'], data['data_samples'], mode='tensor'),
            model(data['inputs'], data['data_samples'], mode='tensor'))


def test_detect_anomalous_params_sees_every_block(tmp_path):
    """MMDDP's check walks the model loss's graph only and would report
    blocks 1..K-1; the wrapper reports what no loss reached."""
    import torch.distributed as dist
    from mmengine.model import MMDistributedDataParallel
    dist.init_process_group(
        'gloo', init_method=f'file://{tmp_path}/pg', rank=0, world_size=1)
    try:
        model = _model()
        model.register_parameter('unused', torch.nn.Parameter(torch.ones(2)))
        ddp = MMDistributedDataParallel(
            module=model, detect_anomalous_params=True)
        wrapper = local_wrapper(ddp, method='man++', num_blocks=3)
        with mock.patch('mmengine.model.utils.print_log') as theirs, \
                mock.patch('mmman.engine.ddp_sync.print_log') as ours:
            ddp.train_step(seg_batch(), wrapper)
    finally:
        dist.destroy_process_group()
    reported = [c[0][0] for c in theirs.call_args_list + ours.call_args_list
                if 'computational graph' in c[0][0]]
    assert len(reported) == 1 and reported[0].startswith('unused ')
