"""MAN / MAN++ module: EMA math, gradient routing, ablation switches."""
import pytest
import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

from helpers import build, seg_batch, seg_model_cfg, local_wrapper
from mmman.local import (ChannelScaleBias, LiveCopy, MomentumAuxNet,
                         resolve_eta_cfg)


def _layer(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(4, 6, 3, padding=1), nn.BatchNorm2d(6))


def _params(module):
    return [p.detach().clone() for p in module.parameters()]


def test_ema_follows_paper_momentum_convention():
    source = _layer()
    eta = MomentumAuxNet(source, 6, learnable_copy=False, momentum=0.995)
    eta.reset(source)
    old = _params(eta.ema.module)
    with torch.no_grad():
        for p in source.parameters():
            p.add_(1.0)
    eta.update(source)
    for o, new_src, avg in zip(old, source.parameters(),
                               eta.ema.module.parameters()):
        expected = 0.995 * o + 0.005 * new_src
        torch.testing.assert_close(avg, expected, rtol=1e-6, atol=1e-6)
        # 99.5% of the old value is kept: the EMA moved by 0.005 only.
        torch.testing.assert_close(avg - o, torch.full_like(o, 0.005))


def test_reset_copies_exactly_and_ema_steps_restart():
    source = _layer(0)
    eta = MomentumAuxNet(source, 6, momentum=0.995)
    other = _layer(1)
    eta.reset(other)
    for a, b, c in zip(eta.copy.parameters(), eta.ema.module.parameters(),
                       other.parameters()):
        assert torch.equal(a, c) and torch.equal(b, c)
    assert int(eta.ema.steps) == 1


def test_local_gradient_flows_through_ema_branch_but_not_into_it():
    source = _layer()
    eta = MomentumAuxNet(source, 6, learnable_copy=False, momentum=0.995)
    eta.reset(source)
    x = torch.randn(2, 4, 5, 5, requires_grad=True)
    eta(x).square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in eta.ema.parameters())
    assert all(not p.requires_grad for p in eta.ema.parameters())


def test_scale_bias_gets_gradients_and_starts_as_identity():
    source = _layer()
    eta = MomentumAuxNet(
        source, 6, momentum=0.995, scale_bias=dict(type='ChannelScaleBias'))
    eta.reset(source)
    x = torch.randn(2, 4, 5, 5)
    eta.train()
    plain = eta.copy(x) + eta.ema(x)
    torch.testing.assert_close(eta(x), plain)
    eta(x).square().sum().backward()
    assert eta.scale_bias.scale.grad.abs().sum() > 0
    assert eta.scale_bias.bias.grad.abs().sum() > 0
    assert eta.copy[0].weight.grad.abs().sum() > 0


def test_scale_bias_on_tokens_uses_last_dim():
    sb = ChannelScaleBias(5)
    with torch.no_grad():
        sb.scale.copy_(torch.arange(5.0))
    x = torch.ones(2, 3, 5)
    assert torch.equal(sb(x)[0, 0], torch.arange(5.0))


def test_live_copy_is_parameters_without_ema():
    source = _layer()
    eta = MomentumAuxNet(source, 6, learnable_copy=False, momentum=0.0)
    assert isinstance(eta.ema, LiveCopy)
    eta.reset(source)
    with torch.no_grad():
        for p in source.parameters():
            p.mul_(3.0)
    eta.update(source)
    for a, b in zip(eta.ema.module.parameters(), source.parameters()):
        assert torch.equal(a, b)


@pytest.mark.parametrize(
    'method, eta, parts',
    [
        ('dgl', None, None),
        ('man', dict(learnable_copy=False, momentum=0.0),
         ('live', )),  # parameters without EMA
        ('man', dict(learnable_copy=False), ('ema', )),  # EMA only
        ('man', None, ('copy', 'ema')),  # EMA + learnable copy (MAN)
        ('man++', None, ('copy', 'ema', 'bal')),  # + s / 2-s (MAN++)
        ('man++', dict(balance=None, scale_bias=dict(type='ChannelScaleBias')),
         ('copy', 'ema', 'sb')),  # + per-channel scaling bias (option)
    ])
def test_ablation_switches_build_what_they_say(method, eta, parts):
    model = build('mmseg', seg_model_cfg())
    wrapper = local_wrapper(model, method=method, eta=eta, num_blocks=3)
    for module in wrapper.aux.etas:
        if parts is None:
            assert isinstance(module, nn.Identity)
            continue
        assert isinstance(module, MomentumAuxNet)
        assert (module.copy is not None) == ('copy' in parts)
        assert isinstance(module.ema, LiveCopy) == ('live' in parts)
        assert (module.ema is not None) == bool({'ema', 'live'} & set(parts))
        assert (module.scale_bias is not None) == ('sb' in parts)
        assert (module.balance is not None) == ('bal' in parts)
    # Every variant trains.
    model.train_step(seg_batch(), wrapper)


def test_copies_are_of_the_next_blocks_first_unit_and_track_it():
    model = build('mmseg', seg_model_cfg())
    wrapper = local_wrapper(model, lr=0.1, method='man', num_blocks=2)
    plan, eta = wrapper.plan, wrapper.aux.etas[0]
    nxt = plan.next_unit(0).module
    assert plan.next_unit(0).name == 'backbone.layer3.0'
    model.train_step(seg_batch(), wrapper)  # takes the copies, then steps
    # eta'' = 0.995 * (next layer before the step) + 0.005 * (after)
    before = [p.detach().clone() for p in nxt.parameters()]
    ema_before = _params(eta.ema.module)
    model.train_step(seg_batch(seed=1), wrapper)
    for eb, b, a, e in zip(ema_before, before, nxt.parameters(),
                           eta.ema.module.parameters()):
        assert not torch.equal(b, a)  # the next layer did move
        torch.testing.assert_close(e, 0.995 * eb + 0.005 * a)


def test_copies_follow_source_mode():
    model = build('mmseg', seg_model_cfg())
    wrapper = local_wrapper(model, method='man', num_blocks=2)
    nxt = wrapper.plan.next_unit(0).module
    model.train()
    nxt.bn1.eval()  # like norm_eval on the source
    model.train_step(seg_batch(), wrapper)
    eta = wrapper.aux.etas[0]
    assert not eta.copy.bn1.training and not eta.ema.module.bn1.training
    assert eta.copy.bn2.training and eta.ema.module.bn2.training


@pytest.mark.parametrize('bad', [
    dict(method='nope'),
    dict(method='man', eta=dict(learnable_copy=False, ema=False)),
    dict(method='man', momentum=1.0),
    dict(method='man', eta=dict(ema=False, scale_bias=dict(
        type='ChannelScaleBias'))),
])
def test_bad_man_settings_fail_clearly(bad):
    model = build('mmseg', seg_model_cfg())
    with pytest.raises(ValueError):
        local_wrapper(model, num_blocks=2, **bad)


def test_method_presets():
    assert resolve_eta_cfg('dgl', None, 0.995) is None
    assert resolve_eta_cfg('e2e', None, 0.995) is None
    man = resolve_eta_cfg('man', None, 0.99)
    assert man['momentum'] == 0.99 and man['scale_bias'] is None
    plus = resolve_eta_cfg('man++', None, 0.995)
    assert plus['scale_bias'] is None
    assert plus['balance'] == dict(type='BranchBalance')


def _dropout_layer(seed=0, p=0.3):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(4, 6, 3, padding=1), nn.BatchNorm2d(6),
                         nn.ReLU(), nn.Dropout(p), nn.Conv2d(6, 6, 1))


def _eta_step(recompute, p=0.3):
    """One local backward through MAN++'s eta; gradients, BN statistics
    and the bytes autograd saved (activations only)."""
    from mmman.utils import SavedTensorsMeter
    source = _dropout_layer(p=p)
    eta = MomentumAuxNet(source, 6, balance=dict(type='BranchBalance'),
                         recompute=recompute)
    eta.reset(source)
    weights = {t.untyped_storage().data_ptr() for t in eta.ema.parameters()}

    class Activations(SavedTensorsMeter):

        def _pack(self, tensor):
            if tensor.untyped_storage().data_ptr() in weights:
                return tensor
            return super()._pack(tensor)

    torch.manual_seed(1)
    x = torch.randn(2, 4, 16, 16, requires_grad=True)
    with Activations() as meter, FlopCounterMode(display=False) as flops:
        eta(x).square().sum().backward()
    grads = [x.grad] + [p.grad for p in eta.parameters() if p.requires_grad]
    return (grads, [b.clone() for b in eta.buffers()], meter.peak_bytes,
            flops.get_total_flops())


def test_recomputed_eta_gives_the_same_step_and_holds_less():
    """``recompute`` (the MAN/MAN++ default) replays each branch in the
    local backward: the same gradients (dropout draws replayed), BatchNorm
    statistics moved once, and fewer bytes held than both branches' own."""
    assert resolve_eta_cfg('man++', None, 0.995)['recompute'] is True
    plain_grads, plain_bufs, plain_peak, plain_flops = _eta_step(False)
    grads, bufs, peak, flops = _eta_step(True)
    assert len(grads) == len(plain_grads) == 1 + 6 + 1  # x, eta', s
    for a, b in zip(grads, plain_grads):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    for a, b in zip(bufs, plain_bufs):
        assert torch.equal(a, b)
    # The two branches' activations are 2 x (conv in/out, BN out, ReLU out,
    # dropout mask and out); recomputed, one branch's at a time.
    assert peak < 0.7 * plain_peak, (peak, plain_peak)
    # for about one more forward of each branch (checkpoint stops once
    # what backward needs is back)
    with FlopCounterMode(display=False) as one:
        _dropout_layer()(torch.randn(2, 4, 16, 16))
    one = one.get_total_flops()
    assert 1.5 * one < flops - plain_flops <= 2 * one
    # 'ema': eta'' alone is replayed, after eta' has backpropagated (it
    # runs eta'' first, so dropout draws go to the branches the other way
    # round: compared without dropout)
    plain_grads, plain_bufs, plain_peak, plain_flops = _eta_step(False, 0.0)
    ema_grads, ema_bufs, ema_peak, ema_flops = _eta_step('ema', 0.0)
    for a, b in zip(ema_grads + ema_bufs, plain_grads + plain_bufs):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert 0.5 * one < ema_flops - plain_flops <= one
    assert ema_peak < 0.8 * plain_peak, (ema_peak, plain_peak)  # 1: none
    with pytest.raises(ValueError, match="True, False or 'ema'"):
        _eta_step('both')
