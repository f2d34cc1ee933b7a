"""Each block learns from its own local loss only; the last from the model's.

The reference is computed with a plain forward and ``torch.autograd.grad`` of
each loss with respect to that block's parameters, no mmman involved.
"""
import copy

import pytest
import torch
from mmengine.logging import MessageHub
from mmengine.optim import OptimWrapper
from torch.optim import SGD

from helpers import (block_params, build, det_batch, det_model_cfg,
                     local_grads, local_wrapper, reference_grads, seg_batch,
                     seg_model_cfg, vit_seg_model_cfg)


def _resnext_det_cfg():
    cfg = det_model_cfg()
    cfg['backbone'] = dict(
        type='ResNeXt',
        depth=50,
        groups=4,
        base_width=4,
        base_channels=8,
        stem_channels=8,
        out_indices=(0, 1, 2, 3),
        norm_cfg=dict(type='BN'),
        norm_eval=False)
    cfg['neck']['in_channels'] = [32, 64, 128, 256]
    return cfg


def _with_cp_det_cfg():
    cfg = det_model_cfg()
    cfg['backbone']['with_cp'] = True  # activation checkpointing
    return cfg


CASES = {
    # MMSeg DeepLabV3 (dilated ResNetV1c-18), K=4 split evenly over 8 units.
    'seg-k4': ('mmseg', seg_model_cfg(), seg_batch, dict(num_blocks=4)),
    # MMSeg ViT: K=2 over 4 transformer blocks; output 1 of a finished block.
    'vit-k2': ('mmseg', vit_seg_model_cfg(), seg_batch, dict(num_blocks=2)),
    # MMDet RetinaNet: boundaries inside layer2 and layer3, so the layer2
    # output fed to FPN is produced inside the finished block 2.
    'det-fpn-inside': ('mmdet', det_model_cfg(), det_batch,
                       dict(boundaries=['layer2.0', 'layer3.0'])),
    # MMDet ResNeXt-50 (grouped bottlenecks), K=4 over 16 units.
    'det-resnext-k4': ('mmdet', _resnext_det_cfg(), det_batch,
                       dict(num_blocks=4)),
    # with_cp=True: units recompute their forward during backward.
    'det-with-cp': ('mmdet', _with_cp_det_cfg(), det_batch,
                    dict(num_blocks=3)),
    # MMSeg DeepLabV3 (dilated ResNetV1c): boundary inside layer3 *and* at
    # layer4.0, so layer3's output (auxiliary_head input) comes from a
    # finished block.
    'seg-aux-inside': ('mmseg', seg_model_cfg(), seg_batch,
                       dict(boundaries=['layer3.0', 'layer4.0'])),
}


@pytest.mark.parametrize('method', ['dgl', 'man++'])
@pytest.mark.parametrize('case', sorted(CASES))
def test_block_gradients_equal_their_own_loss(case, method):
    scope, cfg, make_batch, partition = CASES[case]
    model = build(scope, cfg)
    model.train()
    wrapper = local_wrapper(model, method=method, **partition)
    plan, aux = wrapper.plan, wrapper.aux
    batch = make_batch()

    got = local_grads(model, wrapper, batch)
    # Same aux state, plain forward (the wrapper's hooks live only inside
    # its optim_context).
    model.zero_grad()
    ref = reference_grads(model, aux, plan, batch)

    for k in range(plan.num_blocks):
        names = list(block_params(model, plan, k))
        assert names, f'block {k + 1} has no parameters'
        moved = [n for n in names if ref[n].abs().sum() > 0]
        assert moved, f'block {k + 1}: reference gradient is all zero'
        for n in names:
            torch.testing.assert_close(
                got[n], ref[n], rtol=1e-4, atol=1e-6, msg=f'block {k+1} {n}')


def test_local_loss_would_leak_without_stop_gradient():
    """Sanity of the reference: E2E gradients of block 1 differ from L_1's."""
    model = build('mmseg', seg_model_cfg())
    wrapper = local_wrapper(model, method='dgl', num_blocks=4)
    ref = reference_grads(model, wrapper.aux, wrapper.plan, seg_batch())
    e2e = local_grads(model, OptimWrapper(SGD(model.parameters(), lr=0.1)),
                      seg_batch())
    first = list(block_params(model, wrapper.plan, 0))
    assert any(not torch.allclose(e2e[n], ref[n]) for n in first)


def test_local_losses_are_logged():
    MessageHub.get_instance('test_local_losses_are_logged')  # fresh, current
    model = build('mmseg', seg_model_cfg())
    wrapper = local_wrapper(model, method='man++', num_blocks=3)
    model.train_step(seg_batch(), wrapper)
    scalars = wrapper.message_hub.log_scalars
    for k in (1, 2):
        assert f'train/local{k}_loss_cls' in scalars
    assert 'train/local3_loss_cls' not in scalars


def test_e2e_method_is_bit_identical_to_plain_optim_wrapper():
    cfg = seg_model_cfg()
    plain = build('mmseg', cfg)
    ours = build('mmseg', cfg)
    plain_wrapper = OptimWrapper(SGD(plain.parameters(), lr=0.05,
                                     momentum=0.9))
    ours_wrapper = local_wrapper(ours, lr=0.05, method='e2e')
    assert ours_wrapper.plan is None and ours_wrapper.aux is None
    for seed in range(3):
        batch = seg_batch(seed=seed)
        torch.manual_seed(seed)  # the decode head uses dropout
        a = plain.train_step(copy.deepcopy(batch), plain_wrapper)
        torch.manual_seed(seed)
        b = ours.train_step(copy.deepcopy(batch), ours_wrapper)
        assert torch.equal(a['loss'], b['loss'])
    for (n, p), (_, q) in zip(plain.state_dict().items(),
                              ours.state_dict().items()):
        assert torch.equal(p, q), n


def test_training_step_runs_and_changes_every_block():
    model = build('mmdet', det_model_cfg())
    wrapper = local_wrapper(model, lr=0.05, method='man++', num_blocks=3)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    model.train_step(det_batch(), wrapper)
    for k in range(wrapper.plan.num_blocks):
        params = block_params(model, wrapper.plan, k)
        assert any(not torch.equal(before[n], p) for n, p in params.items())


@pytest.mark.parametrize('case', ['seg-k4', 'det-fpn-inside', 'vit-k2'])
def test_every_aux_parameter_gets_one_gradient_and_is_stepped(case):
    """eta', scaling biases and heads: each is reached by exactly one backward
    (its block's local loss) and moved by the step; eta'' gets no gradient
    and moves by the EMA update only."""
    scope, cfg, make_batch, partition = CASES[case]
    model = build(scope, cfg)
    model.train()
    wrapper = local_wrapper(model, lr=0.1, method='man++', **partition)
    params = dict(wrapper.aux.named_parameters())
    trainable = {n for n, p in params.items() if p.requires_grad}
    frozen = set(params) - trainable
    assert trainable and frozen
    assert all('.ema.' in n for n in frozen)
    counts = dict.fromkeys(trainable, 0)
    for n in trainable:
        params[n].register_hook(
            lambda g, n=n: counts.__setitem__(n, counts[n] + 1))
    before = {n: p.detach().clone() for n, p in params.items()}
    steps = [int(eta.ema.steps) for eta in wrapper.aux.etas]

    model.train_step(make_batch(), wrapper)

    assert counts == dict.fromkeys(trainable, 1)
    # MAN++'s s gets d/ds = eta'(x) - eta''(x), exactly 0 while both copies
    # are equal (the first step): it moves from the second step on
    # (tests/test_seed_methods.py).
    unmoved = [n for n in trainable if torch.equal(before[n], params[n])
               and not n.endswith('balance.s')]
    assert not unmoved, unmoved
    assert all(params[n].grad is None for n in frozen)
    assert [int(eta.ema.steps) for eta in wrapper.aux.etas] == [
        s + 1 for s in steps]
