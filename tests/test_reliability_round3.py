"""Issue 19's defects, each with a test that failed before its fix: plain
plan signatures, mixed labels, MLAAN on VGG and its BatchNorm statistics,
MAN++'s scalar without weight decay, MLAAN + MAN, and the engine's per-step
checks (one sync, gradients too, groups from the plan, no batch kept)."""
from unittest import mock

import pytest
import torch
from mmengine.config import ConfigDict
from mmengine.optim import build_optim_wrapper

from helpers import build, local_wrapper, seg_batch, seg_model_cfg
from mmman.engine import NonFiniteLocalLossError
from mmman.local.mlaan import run_units
from mmman.utils.checkpoint import load_local_checkpoint
from test_cls_partition import cls_batch, classifier, vgg13


def _builtins_only(value):
    if isinstance(value, dict):
        return type(value) is dict and all(
            type(k) is str and _builtins_only(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_builtins_only(v) for v in value)
    return value is None or type(value) in (bool, int, float, str)


# ------------------------------------------- 1: plain plan signatures
@pytest.mark.parametrize('local_cfg', [
    dict(method='man++', objective=dict(type='infopro', decoder='cifar')),
    dict(method='man++', eta=dict(balance=None,
                                  scale_bias=dict(type='ChannelScaleBias'))),
])
def test_plan_signature_holds_builtins_and_loads_with_mmmans_loader(
        local_cfg, tmp_path):
    """The Runner hands the constructor ConfigDicts; the saved signature
    must not keep them (mmman's weights-only loader refuses them)."""
    model = build('mmseg', seg_model_cfg())
    wrapper = build_optim_wrapper(
        model,
        ConfigDict(
            type='LocalOptimWrapper',
            constructor='LocalOptimWrapperConstructor',
            optimizer=dict(type='SGD', lr=0.01),
            local_cfg=dict(local_cfg, num_blocks=4)))
    wrapper.take_copies()
    state = wrapper.state_dict()
    assert _builtins_only(state['mmman_plan']), state['mmman_plan']
    torch.save(dict(optimizer=state), tmp_path / 'ckpt.pth')
    loaded = load_local_checkpoint(str(tmp_path / 'ckpt.pth'))
    wrapper.load_state_dict(loaded['optimizer'])  # resumable


def test_a_checkpoint_with_configdicts_in_its_signature_still_resumes(
        tmp_path):
    """Checkpoints written before the fix: ConfigDicts come back as
    dicts and match the config."""
    model = build('mmseg', seg_model_cfg())
    eta = dict(balance=None, scale_bias=dict(type='ChannelScaleBias'))
    wrapper = local_wrapper(model, method='man++', num_blocks=3, eta=eta)
    state = wrapper.state_dict()
    state['mmman_plan'] = dict(
        state['mmman_plan'],
        eta=ConfigDict(state['mmman_plan']['eta']))
    torch.save(dict(optimizer=state), tmp_path / 'old.pth')
    loaded = load_local_checkpoint(str(tmp_path / 'old.pth'))
    assert type(loaded['optimizer']['mmman_plan']['eta']) is dict
    wrapper.load_state_dict(loaded['optimizer'])


# ------------------------------------------------ 2: Mixup / CutMix
def _mixup_classifier():
    cfg = classifier(dict(type='CifarResNet', depth=20), 64, num_classes=4)
    cfg['data_preprocessor']['batch_augments'] = dict(
        augments=[dict(type='Mixup', alpha=1.0)])
    return build('mmpretrain', cfg)


@pytest.mark.parametrize('objective', [None, 'dgl', 'predsim'])
def test_local_objectives_learn_the_mixed_scores_the_host_head_learns(
        objective):
    model = _mixup_classifier()
    wrapper = local_wrapper(model, method='man++', num_blocks=3,
                            objective=objective)
    seen = []
    targets = wrapper.aux.targets

    def recording(data_samples, inputs=None):
        found = targets(data_samples, inputs)
        seen.append((found, torch.stack([s.gt_score
                                         for s in data_samples])))
        return found

    wrapper.aux.targets = recording
    torch.manual_seed(3)
    model.train_step(cls_batch(n=4, num_classes=4), wrapper)
    found, scores = seen[0]
    assert found.soft and not found.multi_label
    torch.testing.assert_close(found.labels, scores)
    assert (scores.max(dim=1).values < 1).any()  # really mixed
    logits = torch.randn(4, 4)
    torch.testing.assert_close(
        found.class_loss(logits),
        -(scores * logits.log_softmax(dim=1)).sum(dim=1).mean())
    torch.testing.assert_close(found.one_hot(4), scores)


# ---------------------------------------------------- 3: MLAAN on VGG
def test_mlaan_cascade_and_eta_on_vgg_run_the_stage_max_pools():
    model = build('mmpretrain', vgg13())
    # Each block ends a stage: the next one opens with a max-pool.
    wrapper = local_wrapper(model, method='mlaan+man',
                            boundaries=['features.1', 'features.4',
                                        'features.7'])
    plan, aux = wrapper.plan, wrapper.aux
    assert plan.next_unit(0).pre  # block 2 opens after a max-pool
    model.eval()
    outputs, received = {}, {}
    hooks = [
        plan.boundary_unit(k).module.register_forward_hook(
            lambda m, a, out, k=k: outputs.setdefault(k, out))
        for k in range(plan.num_blocks - 1)
    ] + [
        plan.next_unit(k).module.register_forward_pre_hook(
            lambda m, a, k=k: received.setdefault(k, a[0]))
        for k in range(plan.num_blocks - 1)
    ]
    with torch.no_grad():
        data = model.data_preprocessor(cls_batch(), False)
        model.extract_feat(data['inputs'])
        for h in hooks:
            h.remove()
        for k in range(plan.num_blocks - 2):
            # a block's output is what the next block receives: pooled
            nxt = plan.next_unit(k)
            pooled = outputs[k]
            for layer in nxt.pre:
                pooled = layer(pooled)
            torch.testing.assert_close(received[k], pooled)
            assert pooled.shape[-1] == outputs[k].shape[-1] // 2
            cascade = run_units(plan.block_units(k + 1), received[k],
                                first_pre=False)
            torch.testing.assert_close(cascade, outputs[k + 1])
            assert aux.blocks[k].run_eta(received[k]).shape == \
                nxt.module(received[k]).shape
    model.train()
    model.train_step(cls_batch(), wrapper)


# ------------------------------------------ 5: MLAAN's BN statistics
def _bn_state(model):
    return {
        n: b.clone()
        for n, b in model.named_buffers()
        if 'running' in n or 'num_batches' in n
    }


@pytest.mark.parametrize('method', ['mlaan', 'mlaan+man'])
def test_mlaan_cascade_leaves_the_running_statistics_to_the_real_pass(
        method):
    after = {}
    for run, cfg in (('local', dict(method='local')),
                     (method, dict(method=method)),
                     ('reference', dict(method=method,
                                        mlaan=dict(cascade_bn_update=True)))):
        model = build('mmseg', seg_model_cfg(), seed=0)
        model.train()
        wrapper = local_wrapper(model, lr=0.0, num_blocks=3, **cfg)
        model.train_step(seg_batch(seed=0), wrapper)
        after[run] = _bn_state(model)
    for name, value in after['local'].items():
        torch.testing.assert_close(after[method][name], value, msg=name)
    tracked = [n for n in after['local']
               if n.startswith('backbone.layer4') and 'num_batches' in n]
    assert tracked
    for n in tracked:  # the reference code's double update, on request
        assert int(after['reference'][n]) == 2 * int(after['local'][n]) == 2


# ------------------------------------- 6: MAN++'s scalar keeps no decay
@pytest.mark.parametrize('paramwise', [False, True])
def test_branch_balance_scalar_gets_no_weight_decay(paramwise):
    model = build('mmseg', seg_model_cfg())
    optim = dict(type='LocalOptimWrapper',
                 constructor='LocalOptimWrapperConstructor',
                 optimizer=dict(type='SGD', lr=0.5, weight_decay=0.5),
                 local_cfg=dict(method='man++', num_blocks=3))
    if paramwise:
        optim['paramwise_cfg'] = dict(norm_decay_mult=1.0)
    wrapper = build_optim_wrapper(model, optim)
    wrapper.take_copies()
    scalars = [e.balance.s for e in wrapper.aux.etas]
    for group in wrapper.optimizer.param_groups:
        if any(p is s for p in group['params'] for s in scalars):
            assert group['weight_decay'] == 0.0
    # d/ds = eta'(x) - eta''(x) = 0 at the first step: with no decay s
    # stays at its neutral 1 (decayed, it fell to 1 - 0.5 * 0.5).
    model.train_step(seg_batch(), wrapper)
    assert [float(s) for s in scalars] == [1.0] * len(scalars)


def test_checkpoint_from_before_the_no_decay_group_resumes_its_momentum():
    """Older MAN++ checkpoints hold every auxiliary parameter in one group:
    the optimizer state is split the way the current groups are."""
    model = build('mmseg', seg_model_cfg())
    wrapper = local_wrapper(model, lr=0.1, method='man++', num_blocks=3,
                            optimizer=dict(type='SGD', lr=0.1, momentum=0.9,
                                           weight_decay=1e-4))
    for seed in (0, 1):
        model.train_step(seg_batch(seed=seed), wrapper)
    state = wrapper.state_dict()
    *model_groups, aux, no_decay = state['param_groups']
    assert no_decay['weight_decay'] == 0.0 and len(no_decay['params']) == 2
    aux_params = wrapper.aux.legacy_params()  # the constructor's order
    index = {id(p): i for i, p in enumerate(wrapper._all_params())}
    legacy = dict(aux, params=[index[id(p)] for p in aux_params])
    legacy.pop('mmman_no_decay', None)
    old = dict(state, param_groups=model_groups + [legacy])

    fresh_model = build('mmseg', seg_model_cfg())
    fresh = local_wrapper(fresh_model, lr=0.1, method='man++', num_blocks=3,
                          optimizer=dict(type='SGD', lr=0.1, momentum=0.9,
                                         weight_decay=1e-4))
    fresh.load_state_dict(old)
    for group in fresh.optimizer.param_groups[-1:]:
        assert group['weight_decay'] == 0.0
    mine = dict(zip(fresh._all_params(), wrapper._all_params()))
    for new, orig in mine.items():
        if orig in wrapper.optimizer.state:
            torch.testing.assert_close(
                fresh.optimizer.state[new]['momentum_buffer'],
                wrapper.optimizer.state[orig]['momentum_buffer'])


@pytest.mark.parametrize('method', ['man++', 'mlaan+man'])
def test_auxiliary_state_of_the_layout_before_block_objects_resumes(method):
    """Checkpoints hold ``etas.0.copy...`` where the per-block objects now
    hold ``blocks.0.eta.copy...``: they resume, every tensor in place."""
    from mmman.local.auxiliary import PARTS
    model = build('mmseg', seg_model_cfg())
    wrapper = local_wrapper(model, lr=0.1, method=method, num_blocks=3)
    model.train_step(seg_batch(), wrapper)
    state = wrapper.state_dict()
    legacy = {}
    for key, value in state['mmman_local'].items():
        for old, new in PARTS:
            parts = key.split('.')
            if parts[0] == 'blocks' and parts[2] == new:
                key = '.'.join([old, parts[1]] + parts[3:])
                break
        legacy[key] = value
    assert any(k.startswith('etas.0.') for k in legacy)
    fresh_model = build('mmseg', seg_model_cfg(), seed=1)
    fresh = local_wrapper(fresh_model, lr=0.1, method=method, num_blocks=3)
    fresh.load_state_dict(dict(state, mmman_local=legacy))
    for key, value in fresh.aux.state_dict().items():
        torch.testing.assert_close(value, state['mmman_local'][key], msg=key)


def test_branch_balance_decays_on_request():
    model = build('mmseg', seg_model_cfg())
    wrapper = build_optim_wrapper(
        model,
        dict(type='LocalOptimWrapper',
             constructor='LocalOptimWrapperConstructor',
             optimizer=dict(type='SGD', lr=0.5, weight_decay=0.5),
             local_cfg=dict(method='man++', num_blocks=3, eta=dict(
                 balance=dict(type='BranchBalance', decay=True)))))
    wrapper.take_copies()
    model.train_step(seg_batch(), wrapper)
    assert all(float(e.balance.s) == pytest.approx(0.75)
               for e in wrapper.aux.etas)


# --------------------------------------------------- 7: MLAAN + MAN
def test_mlaan_plus_man_gives_eta_a_real_share_of_the_gradient():
    """Before, eta fed only the independent probe (weight 0.001): its
    gradient into block 1 was ~1e-5 of the cascade's."""
    model = build('mmseg', seg_model_cfg())
    wrapper = local_wrapper(model, method='mlaan+man', num_blocks=3)
    aux, plan = wrapper.aux, wrapper.plan
    assert (aux.mlaan['wy'], aux.mlaan['wm']) == (0.4995, 0.4995)
    data = model.data_preprocessor(seg_batch(), True)
    with torch.no_grad():
        h = model.backbone.stem(data['inputs'])
        for unit in plan.block_units(0):
            h = unit.module(h)
    norms = {}
    for part in ('man', 'cascade'):
        x = h.clone().requires_grad_()
        losses = aux.loss(0, x, data['data_samples'], data['inputs'])
        loss = sum(v for n, v in losses.items() if 'loss' in n and (
            n.endswith('_man') == (part == 'man')) and n != 'loss_indep')
        grad, = torch.autograd.grad(loss, x)
        norms[part] = float(grad.norm())
    assert norms['man'] > 0.05 * norms['cascade'], norms


def test_mlaan_weight_of_eta_needs_an_eta():
    model = build('mmseg', seg_model_cfg())
    with pytest.raises(ValueError, match="needs method 'mlaan\\+man'"):
        local_wrapper(model, method='mlaan', num_blocks=3,
                      mlaan=dict(wm=0.5))


# ----------------------------------------------------- 8: the engine
def test_no_batch_outlives_the_step():
    model = build('mmseg', seg_model_cfg())
    wrapper = local_wrapper(model, method='man++', num_blocks=4,
                            objective='infopro')
    model.train_step(seg_batch(), wrapper)
    assert wrapper.aux._cache is None


def test_finite_loss_with_non_finite_gradients_is_not_stepped():
    model = build('mmseg', seg_model_cfg())
    model.train()
    wrapper = local_wrapper(model, lr=0.1, method='man++', num_blocks=3,
                            aux_head=dict(type='ImageClassAuxHead'))
    model.train_step(seg_batch(seed=0), wrapper)
    bias = wrapper.aux.heads[1].fc[-1].bias
    bias.register_hook(lambda g: torch.full_like(g, float('nan')))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    with pytest.raises(NonFiniteLocalLossError,
                       match='gradients of block 2 .* not finite'):
        model.train_step(seg_batch(seed=1), wrapper)
    for n, p in model.named_parameters():
        torch.testing.assert_close(p, before[n], rtol=0, atol=0, msg=n)


def test_local_losses_are_read_with_one_sync_per_step():
    model = build('mmseg', seg_model_cfg())
    wrapper = local_wrapper(model, method='man++', num_blocks=4)
    calls = []
    item, tolist = torch.Tensor.item, torch.Tensor.tolist
    with mock.patch.object(torch.Tensor, 'item',
                           lambda t: calls.append('item') or item(t)), \
            mock.patch.object(torch.Tensor, 'tolist',
                              lambda t: calls.append('tolist') or tolist(t)):
        model.train_step(seg_batch(), wrapper)
    assert calls == ['tolist'], calls
    hub = wrapper.message_hub
    for k in (1, 2, 3):
        assert f'train/local{k}_loss_cls' in hub.log_scalars


def test_clip_groups_come_from_the_plan_without_a_gradient_free_step():
    """Recorded at a first step, the groups needed zero gradients then
    (and differed per rank); built from the plan they need nothing."""
    model = build('mmseg', seg_model_cfg())
    wrapper = build_optim_wrapper(
        model,
        dict(type='LocalOptimWrapper',
             constructor='LocalOptimWrapperConstructor',
             optimizer=dict(type='SGD', lr=0.1),
             clip_grad=dict(max_norm=1.0),
             local_cfg=dict(method='man++', num_blocks=3)))
    wrapper.take_copies()
    groups = wrapper.block_groups
    plan = wrapper.plan
    ids = [id(p) for g in groups for p in g]
    assert len(ids) == len(set(ids)) == len(wrapper._all_params())
    for k in range(plan.num_blocks):
        own = {id(p) for u in plan.block_units(k) for p in
               u.module.parameters()}
        assert own <= {id(p) for p in groups[k]}, k
    assert {id(p) for p in model.backbone.stem.parameters()} <= {
        id(p) for p in groups[0]}
    assert {id(p) for p in model.decode_head.parameters()} <= {
        id(p) for p in groups[-1]}
    for p in model.parameters():  # a step that starts with gradients set
        p.grad = torch.zeros_like(p)
    model.train_step(seg_batch(), wrapper)
    assert 'train/local2_grad_norm' in wrapper.message_hub.log_scalars
