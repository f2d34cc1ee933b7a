"""The seeds' base objectives (DGL, InfoPro, PredSim) and MAN++ as published:
gradient isolation, independent reference computations, every combination
trains and leaves a plain checkpoint."""
import ast
import glob
import os.path as osp
import re

import numpy as np
import pytest
import torch
from mmengine.runner import load_checkpoint

from helpers import (block_params, build, det_batch, det_model_cfg,
                     local_grads, local_wrapper, reference_grads, seg_batch,
                     seg_model_cfg)
from test_cls_partition import cifar_resnet, cls_batch
from mmman.heads import (DGLAuxHead, InfoProAuxHead, PredSimAuxHead,
                         similarity_matrix)
from mmman.local import (BranchBalance, LocalTargets, MomentumAuxNet,
                         infopro_weights)

TASKS = {
    'seg': ('mmseg', seg_model_cfg, seg_batch),
    'det': ('mmdet', det_model_cfg, det_batch),
    # MMPretrain ImageClassifier on CifarResNet-20, the stem a unit of its own
    'cls': ('mmpretrain', lambda: cifar_resnet(20), cls_batch),
}
OBJECTIVES = ['dgl', 'infopro', 'predsim']
# InfoPro with the decoder of its Cityscapes code (the det/seg seed configs)
INFOPRO_DENSE = dict(type='infopro', decoder='segmentation')


@pytest.mark.parametrize('task, method', [('seg', 'local'), ('seg', 'man++'),
                                          ('det', 'man++'), ('cls', 'man++')])
@pytest.mark.parametrize('objective', OBJECTIVES + [INFOPRO_DENSE],
                         ids=OBJECTIVES + ['infopro-dense'])
def test_objective_gradients_equal_their_own_loss(task, objective, method):
    scope, cfg, make_batch = TASKS[task]
    model = build(scope, cfg())
    model.train()
    wrapper = local_wrapper(
        model, method=method, objective=objective, num_blocks=4)
    batch = make_batch()
    got = local_grads(model, wrapper, batch)
    model.zero_grad()
    ref = reference_grads(model, wrapper.aux, wrapper.plan, batch)
    for k in range(wrapper.plan.num_blocks):
        names = list(block_params(model, wrapper.plan, k))
        assert any(ref[n].abs().sum() > 0 for n in names), k
        for n in names:
            torch.testing.assert_close(
                got[n], ref[n], rtol=1e-4, atol=1e-6, msg=f'{k + 1} {n}')


def _np_similarity(x):
    """S(X) of PredSim in numpy: per-channel spatial std (unbiased),
    centred rows, L2-normalised, X X^T clamped to [-1, 1]."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 4:
        x = x.reshape(x.shape[0], x.shape[1], -1).std(axis=2, ddof=1)
    x = x - x.mean(axis=1, keepdims=True)
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    return np.clip(x @ x.T, -1, 1)


def test_predsim_loss_matches_an_independent_computation():
    torch.manual_seed(0)
    head = PredSimAuxHead(in_channels=16, num_classes=5)
    assert head.side == 16  # 16 * 16 * 16 = 4096 pooled inputs
    assert head.decoder.weight.abs().sum() == 0  # zero-initialised
    torch.nn.init.normal_(head.decoder.weight, std=0.1)
    x = torch.randn(4, 16, 32, 32)
    y = torch.tensor([0, 3, 3, 1])
    losses = head.loss(x, LocalTargets(labels=y))

    h = head.sim_conv(x).detach().numpy()
    onehot = np.eye(5)[y.numpy()]
    sim = ((_np_similarity(h) - _np_similarity(onehot))**2).mean()
    pooled = torch.nn.functional.avg_pool2d(x, 2).flatten(1)  # 32 -> 16
    logits = (pooled @ head.decoder.weight.t() + head.decoder.bias).detach()
    logp = logits.double().log_softmax(1).numpy()
    ce = -logp[np.arange(4), y.numpy()].mean()
    np.testing.assert_allclose(losses['loss_sim'].item(), 0.99 * sim,
                               rtol=1e-5)
    np.testing.assert_allclose(losses['loss_cls'].item(), 0.01 * ce,
                               rtol=1e-5)


def test_similarity_of_a_class_set_is_multi_hot():
    sets = torch.tensor([[1., 0., 1.], [1., 0., 1.], [0., 1., 0.]])
    s = similarity_matrix(sets)
    torch.testing.assert_close(s, torch.tensor(_np_similarity(sets)).float())
    assert s[0, 1] == pytest.approx(1.0) and s[0, 2] == pytest.approx(-1.0)


@pytest.mark.parametrize('k, first, last', [
    (2, (5, 1), (5, 1)),
    (4, (6, 0), (1, 2)),
    (8, (5, 0), (0, 2)),
    (16, (5, 0.05), (0.2, 0.5)),
])
def test_infopro_weights_follow_the_published_schedule(k, first, last):
    weights = infopro_weights(k)
    assert len(weights) == k - 1
    assert weights[0] == pytest.approx(first)
    assert weights[-1] == pytest.approx(last)
    # independent: linear in the block index between first and last
    for i, w in enumerate(weights):
        r = i / (k - 2) if k > 2 else 0
        expected = [f + (la - f) * r for f, la in zip(first, last)]
        assert w == pytest.approx(expected)


def test_infopro_weights_reach_the_heads_and_the_loss():
    model = build('mmseg', seg_model_cfg())
    wrapper = local_wrapper(model, method='local', objective='infopro',
                            num_blocks=4)
    heads = wrapper.aux.heads
    assert [(h.recon_weight, h.task_weight) for h in heads] == [
        (6.0, 0.0), (3.5, 1.0), (1.0, 2.0)]
    custom = local_wrapper(
        build('mmseg', seg_model_cfg()), method='local', num_blocks=3,
        objective=dict(type='infopro', recon=(2, 0), task=(1, 3)))
    assert [(h.recon_weight, h.task_weight) for h in custom.aux.heads] == [
        (2, 1), (0, 3)]
    with pytest.raises(ValueError, match='K in'):
        local_wrapper(build('mmseg', seg_model_cfg()), method='local',
                      num_blocks=3, objective='infopro')


def test_infopro_reconstructs_the_denormalised_image_with_bce():
    torch.manual_seed(0)
    head = InfoProAuxHead(in_channels=8, num_classes=3, recon_weight=2.0,
                          task_weight=0.5)
    mean = torch.tensor([100., 110., 120.]).view(3, 1, 1)
    std = torch.tensor([50., 60., 70.]).view(3, 1, 1)
    image = torch.rand(2, 3, 16, 16)
    inputs = (image * 255 - mean) / std
    t = LocalTargets(labels=torch.tensor([0, 2]), inputs=inputs, mean=mean,
                     std=std)
    torch.testing.assert_close(t.image, image, rtol=1e-5, atol=1e-6)
    x = torch.randn(2, 8, 4, 4)
    losses = head.loss(x, t)
    up = torch.nn.functional.interpolate(x, size=(16, 16), mode='bilinear',
                                         align_corners=True)
    p = torch.sigmoid(head.decoder(up)).double()
    bce = -(image * p.log() + (1 - image) * (1 - p).log()).mean()
    torch.testing.assert_close(losses['loss_recon'].double(), 2.0 * bce)
    ce = torch.nn.functional.cross_entropy(head.task(x), t.labels)
    torch.testing.assert_close(losses['loss_cls'], 0.5 * ce)
    assert head.task[0].stride == (2, 2) and head.task[0].out_channels == 16


def test_infopro_segmentation_decoder_is_the_cityscapes_one():
    """InfoPro's Cityscapes decoder: 1x1 to 128, three x2 stages (128 -> 32
    -> 12 -> 3); stride-8 features reconstruct the image exactly in size,
    other strides get their logits resized."""
    torch.manual_seed(0)
    head = InfoProAuxHead(in_channels=8, num_classes=3, recon_weight=1.0,
                          task_weight=0.0, decoder='segmentation').eval()
    convs = [m for m in head.decoder if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size[0])
            for c in convs] == [(8, 128, 1), (128, 32, 3), (32, 12, 3),
                                (12, 3, 3)]
    assert sum(isinstance(m, torch.nn.Upsample) for m in head.decoder) == 3
    image = torch.rand(2, 3, 32, 32)
    t = LocalTargets(labels=torch.tensor([0, 2]), inputs=image * 255,
                     mean=torch.zeros(3, 1, 1), std=torch.ones(3, 1, 1))
    for stride in (8, 16, 4):
        x = torch.randn(2, 8, 32 // stride, 32 // stride)
        logits = head.decoder(x)
        if stride != 8:
            assert logits.shape[-1] == 32 * 8 // stride
            logits = torch.nn.functional.interpolate(
                logits, size=(32, 32), mode='bilinear', align_corners=True)
        p = torch.sigmoid(logits).double()
        bce = -(image * p.log() + (1 - image) * (1 - p).log()).mean()
        torch.testing.assert_close(head.loss(x, t)['loss_recon'].double(),
                                   bce)
    with pytest.raises(ValueError, match='decoder'):
        InfoProAuxHead(in_channels=8, num_classes=3, decoder='imagenet')


def test_dgl_head_is_mlp_sr():
    head = DGLAuxHead(in_channels=8, num_classes=3)
    convs = [m for m in head.convs if isinstance(m, torch.nn.Conv2d)]
    linears = [m for m in head.mlp if isinstance(m, torch.nn.Linear)]
    assert [c.kernel_size for c in convs] == [(1, 1)] * 3
    assert all(c.out_channels == 8 for c in convs)
    assert [(m.in_features, m.out_features) for m in linears] == [
        (32, 32)] * 3 + [(32, 3)]
    assert head(torch.randn(2, 8, 13, 9)).shape == (2, 3)
    multi = torch.tensor([[1., 0., 1.], [0., 1., 0.]])
    loss = head.loss(torch.randn(2, 8, 8, 8),
                     LocalTargets(labels=multi, multi_label=True))
    assert loss['loss_cls'] > 0  # binary cross-entropy on the class set


def test_dgl_head_warns_below_four_images_per_device(monkeypatch):
    import mmman.heads.seed_objectives as objectives
    said = []
    monkeypatch.setattr(objectives, 'print_log',
                        lambda msg, **kwargs: said.append(msg))
    objectives._warn_small_bn1d_batch.cache_clear()
    head = DGLAuxHead(in_channels=8, num_classes=3)
    head(torch.randn(4, 8, 8, 8))
    head.eval()
    head(torch.randn(1, 8, 8, 8))  # BN1d uses running statistics here
    assert said == []
    head.train()
    head(torch.randn(2, 8, 8, 8))
    head(torch.randn(2, 8, 8, 8))
    assert len(said) == 1 and '2 image(s) per device' in said[0]
    objectives._warn_small_bn1d_batch.cache_clear()


def test_published_man_plus_plus_scalar_starts_balanced_and_learns():
    assert float(BranchBalance().s) == 1.0
    model = build('mmseg', seg_model_cfg())
    wrapper = local_wrapper(model, lr=0.1, method='man++', num_blocks=3)
    etas = wrapper.aux.etas
    assert all(float(e.balance.s) == 1.0 and e.scale_bias is None
               for e in etas)
    grads = []
    for e in etas:
        e.balance.s.register_hook(lambda g: grads.append(float(g)))
    model.train_step(seg_batch(), wrapper)
    # d/ds = eta'(x) - eta''(x): 0 while the two copies are equal
    assert grads == [0.0] * len(etas)
    model.train_step(seg_batch(seed=1), wrapper)  # copies differ now
    assert len(grads) == 2 * len(etas) and all(grads[len(etas):])
    assert all(float(e.balance.s) != 1.0 for e in etas)
    # eta(x) = s eta'(x) + (2 - s) eta''(x)
    eta = etas[0]
    x = torch.randn(2, 16, 8, 8)
    with torch.no_grad():
        eta.balance.s.fill_(0.3)
        torch.testing.assert_close(
            eta(x), 0.3 * eta.copy(x) + 1.7 * eta.ema(x))


def test_channel_scale_bias_is_still_an_option():
    model = build('mmseg', seg_model_cfg())
    wrapper = local_wrapper(
        model, lr=0.1, method='man++', num_blocks=3,
        eta=dict(balance=None, scale_bias=dict(type='ChannelScaleBias')))
    etas = wrapper.aux.etas
    assert all(e.balance is None and e.scale_bias is not None for e in etas)
    # eta(x) = eta'(x) + gamma * eta''(x) + beta, per channel
    eta = etas[0]
    x = torch.randn(2, 16, 8, 8)
    with torch.no_grad():
        eta.scale_bias.scale.copy_(torch.linspace(0.5, 2, 16))
        eta.scale_bias.bias.copy_(torch.linspace(-1, 1, 16))
        expected = eta.copy(x) + eta.ema(x) * eta.scale_bias.scale.view(
            1, -1, 1, 1) + eta.scale_bias.bias.view(1, -1, 1, 1)
        torch.testing.assert_close(eta(x), expected)
        for e in etas:
            e.scale_bias.scale.fill_(1.0)
            e.scale_bias.bias.zero_()
    # gamma and beta are trained by the local loss
    model.train_step(seg_batch(), wrapper)
    for e in etas:
        scale = e.scale_bias.scale
        assert not torch.equal(scale, torch.ones_like(scale))
        assert e.scale_bias.bias.abs().sum() > 0


@pytest.mark.parametrize('method',
                         ['local', 'man', 'man++', 'mlaan', 'mlaan+man'])
@pytest.mark.parametrize('objective', OBJECTIVES)
@pytest.mark.parametrize('task', sorted(TASKS))
def test_every_combination_trains_and_saves_a_plain_checkpoint(
        task, objective, method, tmp_path):
    scope, cfg, make_batch = TASKS[task]
    model = build(scope, cfg())
    wrapper = local_wrapper(
        model, method=method, objective=objective, num_blocks=4)
    for seed in range(2):
        model.train_step(make_batch(seed=seed), wrapper)
    assert isinstance(wrapper.aux.etas[0], MomentumAuxNet) == (
        'man' in method)
    assert wrapper.signature['objective'] == objective
    path = str(tmp_path / 'ckpt.pth')
    torch.save(dict(state_dict=model.state_dict(),
                    optimizer=wrapper.state_dict()), path)
    plain = build(scope, cfg(), seed=1)
    load_checkpoint(plain, path, strict=True)
    for n, p in plain.state_dict().items():
        assert torch.equal(p, model.state_dict()[n]), n


def test_objective_replaces_aux_head_and_removed_recon_head_is_named():
    model = build('mmseg', seg_model_cfg())
    wrapper = local_wrapper(model, method='man', objective='predsim',
                            num_blocks=3, aux_head=dict(type='DecodeAuxHead'))
    assert all(isinstance(h, PredSimAuxHead) for h in wrapper.aux.heads)
    with pytest.raises(ValueError, match='recon_head.*was removed'):
        local_wrapper(model, method='man', num_blocks=3,
                      recon_head=dict(type='ReconstructionAuxHead'))
    with pytest.raises(ValueError, match='unknown objective'):
        local_wrapper(model, method='man', objective='nope', num_blocks=3)


_CONFIGS = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))),
                    'configs')
SEED_CONFIGS = sorted(
    glob.glob(osp.join(_CONFIGS, 'mm*', 'seed_methods', '*.py')) +
    glob.glob(osp.join(_CONFIGS, 'mmpretrain', '*', 'seed_methods', '*.py')))


@pytest.mark.parametrize('config', SEED_CONFIGS, ids=osp.basename)
def test_seed_configs_are_one_field_from_man_plus_plus(config):
    from mmengine.config import Config

    from mmman.engine import LocalOptimWrapperConstructor
    cfg = Config.fromfile(config)
    tree = ast.parse(open(config).read())
    base_rel = next(n.value.value for n in tree.body
                    if isinstance(n, ast.Assign)
                    and n.targets[0].id == '_base_')
    assert re.search(r'_man\+\+-k\d+_', base_rel), base_rel
    base = Config.fromfile(osp.join(osp.dirname(config), base_rel))
    ours, theirs = (dict(c.optim_wrapper.local_cfg) for c in (cfg, base))
    diff = {k for k in set(ours) | set(theirs) if ours.get(k) != theirs.get(k)}
    from mmman.local.balance import resolve_balance_cfg
    if ours['method'].startswith('mlaan') and resolve_balance_cfg(
            theirs.get('balance')) is not None:
        # balance refuses MLAAN: the even split is the second field
        assert ours['balance'] is False
        diff.discard('balance')
    assert len(diff) == 1 and diff <= {'method', 'objective'}, diff
    LocalOptimWrapperConstructor(cfg.optim_wrapper)  # validates the fields
