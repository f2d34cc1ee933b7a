"""Classification local objectives (MMPretrain's LinearClsHead, the DGL-style
head) and gradient isolation on MMPretrain classifiers."""
import pytest
import torch
import torch.nn.functional as F
from mmengine.registry import MODELS

from helpers import (block_params, build, local_grads, local_wrapper,
                     reference_grads)
from helpers import one_thread  # noqa: F401  (autouse)
from test_cls_partition import cifar_resnet, classifier, cls_batch, vit



def vgg11_three_stages():
    return classifier(
        dict(type='VGG', depth=11, num_stages=3, dilations=(1, 1, 1),
             out_indices=(2, ), norm_cfg=dict(type='BN')), 256)


CASES = {
    # CifarResNet-20 with the stem as a block of its own, DGL-style head.
    'resnet20-stem-k4': (cifar_resnet(20), dict(num_blocks=4), 10),
    # Boundaries at stage ends; MMPretrain's LinearClsHead as objective.
    'resnet20-linear-head': (cifar_resnet(20, stem_unit=False),
                             dict(boundaries=['layer1.2', 'layer2.2'],
                                  aux_head=dict(type='ClsAuxHead')), 10),
    # VGG: boundaries before max-pools (features.1, .3 open blocks 2, 3).
    'vgg11-k3': (vgg11_three_stages(),
                 dict(boundaries=['features.0', 'features.2'],
                      aux_head=dict(type='ClsAuxHead')), 10),
    # ViT tokens; MMPretrain's head pooled over the tokens.
    'vit-k2': (vit(), dict(num_blocks=2, aux_head=dict(type='ClsAuxHead')),
               3),
}


@pytest.mark.parametrize('method', ['dgl', 'man++'])
@pytest.mark.parametrize('case', sorted(CASES))
def test_block_gradients_equal_their_own_loss(case, method):
    cfg, partition, num_classes = CASES[case]
    model = build('mmpretrain', cfg)
    model.train()
    wrapper = local_wrapper(model, method=method, **partition)
    plan, aux = wrapper.plan, wrapper.aux
    batch = cls_batch(num_classes=num_classes)

    got = local_grads(model, wrapper, batch)
    # Same aux state, plain forward (the wrapper's hooks live only inside
    # its optim_context).
    model.zero_grad()
    ref = reference_grads(model, aux, plan, batch)

    for k in range(plan.num_blocks):
        names = list(block_params(model, plan, k))
        assert names, f'block {k + 1} has no parameters'
        assert any(ref[n].abs().sum() > 0 for n in names)
        for n in names:
            torch.testing.assert_close(
                got[n], ref[n], rtol=1e-4, atol=1e-6, msg=f'block {k+1} {n}')


def _samples(labels):
    from mmpretrain.structures import DataSample
    return [DataSample().set_gt_label(int(i)) for i in labels]


def test_cls_aux_head_is_mmpretrain_linear_head_on_pooled_features():
    build('mmpretrain', cifar_resnet(20))  # registers MMPretrain's modules
    head = MODELS.build(dict(type='ClsAuxHead', in_channels=8,
                             num_classes=4))
    assert type(head.head).__name__ == 'LinearClsHead'
    x = torch.randn(3, 8, 5, 5)
    labels = torch.tensor([0, 3, 1])
    losses = head.loss(x, _samples(labels))
    fc = head.head.fc
    expected = F.cross_entropy(fc(x.mean(dim=(2, 3))), labels)
    assert set(losses) == {'loss_cls'}
    torch.testing.assert_close(losses['loss_cls'], expected)
    # Transformer tokens (N, L, C) are pooled over the tokens.
    tokens = MODELS.build(dict(type='ClsAuxHead', in_channels=8,
                               num_classes=4, tokens=True))
    t = torch.randn(3, 7, 8)
    expected = F.cross_entropy(tokens.head.fc(t.mean(dim=1)), labels)
    torch.testing.assert_close(
        tokens.loss(t, _samples(labels))['loss_cls'], expected)
    # The head's own options apply, e.g. label smoothing.
    smooth = MODELS.build(dict(
        type='ClsAuxHead', in_channels=8, num_classes=4,
        head=dict(loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1))))
    assert smooth.loss(x, _samples(labels))['loss_cls'] > 0


def test_dgl_style_head_learns_single_labels_with_cross_entropy():
    model = build('mmpretrain', cifar_resnet(20))
    wrapper = local_wrapper(model, method='dgl', num_blocks=2)
    head = wrapper.aux.heads[0]
    assert type(head).__name__ == 'ImageClassAuxHead'
    batch = cls_batch(n=4)
    labels = torch.tensor([int(s.gt_label) for s in batch['data_samples']])
    x = torch.randn(4, head.embed[0].in_channels, 8, 8)
    head.eval()  # deterministic BN for the comparison
    loss = wrapper.aux.loss(0, x, batch['data_samples'])['loss_cls']
    torch.testing.assert_close(loss, F.cross_entropy(head(x), labels))


def test_classification_training_lowers_the_local_losses():
    """Every local block fits a fixed batch on its own loss (a block whose
    loss did not reach its parameters, or a head trained on the wrong
    target, would not halve its loss)."""
    torch.manual_seed(0)
    model = build('mmpretrain', cifar_resnet(20))
    wrapper = local_wrapper(model, lr=0.05, method='man++', num_blocks=4,
                            aux_head=dict(type='ClsAuxHead'))
    batch = cls_batch(n=8, num_classes=2)
    history = {k: [] for k in (1, 2, 3)}
    for _ in range(15):
        model.train_step(batch, wrapper)
        scalars = wrapper.message_hub.log_scalars
        for k, values in history.items():
            values.append(scalars[f'train/local{k}_loss_cls'].current())
    for k, values in history.items():
        assert values[-1] < 0.5 * values[0], (k, values)
