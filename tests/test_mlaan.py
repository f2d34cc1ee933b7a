"""MLAAN: cascade through the real next block (one block of overlap), leap
module with EMA copies, wx/wy mix, per-block clipping with the overlap."""
import copy

import pytest
import torch
from mmengine.logging import MessageHub
from mmengine.optim import build_optim_wrapper

import mmman
from helpers import (block_params, build, det_batch, det_model_cfg,
                     local_grads, local_wrapper, seg_batch, seg_model_cfg)
from mmman.local import feature_channels
from mmman.local.mlaan import run_units

CASES = {
    'seg-k4': ('mmseg', seg_model_cfg, seg_batch, dict(num_blocks=4)),
    'det-k3': ('mmdet', det_model_cfg, det_batch, dict(num_blocks=3)),
}


def _block_of(model, plan):
    """parameter name -> block index."""
    owner = {}
    for k in range(plan.num_blocks):
        owner.update(dict.fromkeys(block_params(model, plan, k), k))
    return owner


def _mlaan_reference(model, aux, plan, batch):
    """Per-block gradients without mmman's machinery: plain forward, each
    loss backpropagated alone; block j gets dL_j/dtheta_j plus block j-1's
    loss's gradient on it (the cascade), nothing else."""
    feats = {}
    handles = [
        plan.boundary_unit(k).module.register_forward_hook(
            lambda m, a, out, k=k: feats.__setitem__(k, out))
        for k in range(plan.num_blocks - 1)
    ]
    try:
        torch.manual_seed(0)
        data = model.data_preprocessor(copy.deepcopy(batch), True)
        losses = model(**data, mode='loss')
    finally:
        for h in handles:
            h.remove()
    aux.train()
    all_losses = [
        model.parse_losses(
            aux.loss(k, feats[k], data['data_samples'], data['inputs']))[0]
        for k in range(plan.num_blocks - 1)
    ] + [model.parse_losses(losses)[0]]
    per_loss = []
    for i, loss in enumerate(all_losses):
        model.zero_grad()
        loss.backward(retain_graph=i < len(all_losses) - 1)
        per_loss.append({
            n: torch.zeros_like(p) if p.grad is None else p.grad.clone()
            for n, p in model.named_parameters() if p.requires_grad
        })
    model.zero_grad()
    owner = _block_of(model, plan)
    ref = {}
    for n, j in owner.items():
        ref[n] = per_loss[j][n] + (per_loss[j - 1][n] if j > 0 else 0)
    return ref, per_loss


@pytest.mark.parametrize('method', ['mlaan', 'mlaan+man'])
@pytest.mark.parametrize('case', sorted(CASES))
def test_block_k_plus_1_gets_its_own_and_block_ks_cascade(case, method):
    scope, cfg, make_batch, partition = CASES[case]
    model = build(scope, cfg())
    model.train()
    wrapper = local_wrapper(model, method=method, objective='dgl',
                            **partition)
    plan = wrapper.plan
    got = local_grads(model, wrapper, make_batch())
    model.zero_grad()
    ref, per_loss = _mlaan_reference(model, wrapper.aux, plan, make_batch())
    owner = _block_of(model, plan)
    for k in range(1, plan.num_blocks):
        names = [n for n, j in owner.items() if j == k]
        # the cascade of block k-1 really reaches block k
        assert any(per_loss[k - 1][n].abs().sum() > 0 for n in names), k
    for n in owner:
        torch.testing.assert_close(got[n], ref[n], rtol=1e-4, atol=1e-6,
                                   msg=n)


def test_a_local_backward_reaches_exactly_blocks_k_and_k_plus_1():
    model = build('mmseg', seg_model_cfg())
    wrapper = local_wrapper(model, method='mlaan', num_blocks=4)
    owner = _block_of(model, wrapper.plan)
    params = dict(model.named_parameters())
    reached = []
    backward = wrapper._local_backward

    def recording(loss):
        before = {n: None if p.grad is None else p.grad.clone()
                  for n, p in params.items()}
        backward(loss)
        reached.append({
            owner[n] for n, p in params.items() if n in owner and
            p.grad is not None and (before[n] is None or
                                    not torch.equal(before[n], p.grad))})

    wrapper._local_backward = recording
    model.train_step(seg_batch(), wrapper)
    assert reached == [{0, 1}, {1, 2}, {2, 3}]


def test_loss_mixes_independent_and_cascade_with_published_weights():
    model = build('mmseg', seg_model_cfg())
    wrapper = local_wrapper(model, method='mlaan', objective='dgl',
                            num_blocks=3)
    aux, plan = wrapper.aux, wrapper.plan
    assert (aux.mlaan['wx'], aux.mlaan['wy']) == (0.001, 0.999)
    aux.train()
    data = model.data_preprocessor(seg_batch(), True)
    channels = feature_channels(plan.boundary_unit(0).module)
    x = torch.randn(2, channels, 8, 8)
    torch.manual_seed(0)
    losses = aux.loss(0, x, data['data_samples'], data['inputs'])
    t = aux.targets(data['data_samples'], data['inputs'])
    indep = t.class_loss(aux.probes[0](x))
    cascade = aux.heads[0].loss(
        aux.leaps[0](run_units(plan.block_units(1), x)), t)
    torch.testing.assert_close(losses['loss_indep'], 0.001 * indep)
    torch.testing.assert_close(losses['loss_cls'],
                               0.999 * cascade['loss_cls'])


def test_leap_module_copies_the_unit_after_the_next_block_with_ema():
    model = build('mmseg', seg_model_cfg())
    wrapper = local_wrapper(model, lr=0.1, method='mlaan+man', num_blocks=4)
    aux, plan = wrapper.aux, wrapper.plan
    for k in range(2):
        source = plan.units[plan.ends[k + 1] + 1].module
        first = aux.leaps[k].first
        assert type(first.copy) is type(source) and first.ema is not None
        for a, b in zip(first.copy.parameters(), source.parameters()):
            assert torch.equal(a, b)
    assert aux.leaps[2].first is None  # block 3 cascades into the last
    emas = [aux.leaps[k].first.ema for k in range(2)] + [
        e.ema for e in aux.etas]
    steps = [int(e.steps) for e in emas]
    model.train_step(seg_batch(), wrapper)
    # every EMA copy moves after every step (not only the last one)
    assert [int(e.steps) for e in emas] == [s + 1 for s in steps]
    assert aux.copy_sources()['leaps.0.first.copy'] == \
        plan.units[plan.ends[1] + 1].name


def test_clip_grad_groups_follow_blocks_despite_the_overlap():
    MessageHub.get_instance('test_mlaan_clip')
    model = build('mmseg', seg_model_cfg())
    wrapper = build_optim_wrapper(
        model,
        dict(
            type='LocalOptimWrapper',
            constructor='LocalOptimWrapperConstructor',
            optimizer=dict(type='SGD', lr=0.1),
            clip_grad=dict(max_norm=0.5),
            local_cfg=dict(method='mlaan', num_blocks=3)))
    mmman.start_local_training(wrapper)
    model.train_step(seg_batch(), wrapper)
    plan, groups = wrapper.plan, wrapper.block_groups[:-1]
    assert len(groups) == 2
    for k in range(2):
        ids = {id(p) for p in groups[k]}
        own = {id(p) for u in plan.block_units(k) for p in
               u.module.parameters()}
        nxt = {id(p) for u in plan.block_units(k + 1) for p in
               u.module.parameters()}
        assert own <= ids and not (nxt & ids), k
        for part in (wrapper.aux.heads[k], wrapper.aux.probes[k]):
            assert {id(p) for p in part.parameters()} <= ids
    hub = wrapper.message_hub
    for key in ('train/local1_grad_norm', 'train/local2_grad_norm',
                'train/grad_norm'):
        assert key in hub.log_scalars, key


def test_paramwise_cfg_reaches_leap_copies_and_balance_scalars():
    model = build('mmseg', seg_model_cfg())
    wrapper = build_optim_wrapper(
        model,
        dict(
            type='LocalOptimWrapper',
            constructor='LocalOptimWrapperConstructor',
            optimizer=dict(type='SGD', lr=0.1),
            paramwise_cfg=dict(custom_keys={
                'backbone.layer3.0': dict(lr_mult=0.25),
                'balance': dict(lr_mult=0.5)
            }),
            local_cfg=dict(method='mlaan+man', num_blocks=4,
                           eta=dict(balance=dict(type='BranchBalance')))))
    aux, plan = wrapper.aux, wrapper.plan
    assert plan.units[plan.ends[1] + 1].name == 'backbone.layer3.0'
    lr = {id(p): g['lr'] for g in wrapper.optimizer.param_groups
          for p in g['params']}
    leap = list(aux.leaps[0].first.copy.parameters())
    assert leap and all(lr[id(p)] == pytest.approx(0.025) for p in leap)
    assert all(id(p) not in lr for p in aux.leaps[0].first.ema.parameters())
    assert all(lr[id(e.balance.s)] == pytest.approx(0.05) for e in aux.etas)
    trainable = [p for p in aux.parameters() if p.requires_grad]
    assert all(id(p) in lr for p in trainable)
