"""Block plans over MMPretrain's backbones and mmman's CIFAR ResNets."""
import pytest
import torch

from helpers import build, local_wrapper
from helpers import one_thread  # noqa: F401  (autouse)
from mmman.local import PartitionError, backbone_units, build_block_plan



def classifier(backbone, in_channels, neck=True, num_classes=10):
    return dict(
        type='ImageClassifier',
        data_preprocessor=dict(
            num_classes=num_classes, mean=[127.5] * 3, std=[127.5] * 3),
        backbone=backbone,
        neck=dict(type='GlobalAveragePooling') if neck else None,
        head=dict(
            type='LinearClsHead',
            num_classes=num_classes,
            in_channels=in_channels,
            loss=dict(type='CrossEntropyLoss')))


def cifar_resnet(depth, stem_unit=True):
    return classifier(
        dict(type='CifarResNet', depth=depth, stem_unit=stem_unit), 64)


def vit():
    return dict(
        type='ImageClassifier',
        data_preprocessor=dict(num_classes=3, mean=[127.5] * 3,
                               std=[127.5] * 3),
        backbone=dict(
            type='VisionTransformer',
            arch=dict(embed_dims=16, num_layers=4, num_heads=2,
                      feedforward_channels=32),
            img_size=32,
            patch_size=8),
        head=dict(type='VisionTransformerClsHead', num_classes=3,
                  in_channels=16))


def vgg13(**kwargs):
    backbone = dict(type='VGG', depth=13, norm_cfg=dict(type='BN'),
                    **kwargs)
    if kwargs.get('num_classes', -1) > 0:
        return dict(type='ImageClassifier', backbone=backbone,
                    head=dict(type='ClsHead'))
    return classifier(backbone, 512)


def cls_batch(n=2, size=32, num_classes=10, seed=0):
    from mmpretrain.structures import DataSample
    g = torch.Generator().manual_seed(seed)
    inputs = [torch.randint(0, 256, (3, size, size), generator=g,
                            dtype=torch.uint8) for _ in range(n)]
    samples = [DataSample().set_gt_label(i % num_classes) for i in range(n)]
    return dict(inputs=inputs, data_samples=samples)


def names(plan, k):
    return [u.name.split('.', 1)[1] for u in plan.block_units(k)]


def ends(plan):
    return [plan.units[e].name.split('.', 1)[1] for e in plan.ends]


def test_resnet32_k16_is_the_stem_and_each_residual_unit():
    model = build('mmpretrain', cifar_resnet(32))
    plan = build_block_plan(model, num_blocks=16)
    assert [names(plan, k) for k in range(16)] == [['stem']] + [
        [f'layer{s}.{i}'] for s in (1, 2, 3) for i in range(5)
    ]
    assert plan.next_unit(0).name == 'backbone.layer1.0'  # MAN's copy
    assert plan.output_units == (15, )


def test_resnet32_k15_merges_the_stem_into_the_first_block():
    # The public code's 15 modules: with or without the stem as a unit.
    merged = build_block_plan(
        build('mmpretrain', cifar_resnet(32, stem_unit=False)), num_blocks=15)
    assert names(merged, 0) == ['layer1.0'] and len(merged.units) == 15
    own = build_block_plan(build('mmpretrain', cifar_resnet(32)),
                           num_blocks=15)
    assert names(own, 0) == ['stem', 'layer1.0']
    assert ends(own) == ends(merged)
    # Without the stem as a unit, K=16 cannot be honoured: one clear error.
    with pytest.raises(PartitionError,
                       match='num_blocks=16 is more than the 15 trainable'):
        build_block_plan(
            build('mmpretrain', cifar_resnet(32, stem_unit=False)),
            num_blocks=16)


def test_resnet110_k55_and_k32():
    model = build('mmpretrain', cifar_resnet(110))
    units, _ = backbone_units(model)
    assert len(units) == 55 and units[0].name == 'backbone.stem'
    assert [u.name for u in units[1:]] == [
        f'backbone.layer{s}.{i}' for s in (1, 2, 3) for i in range(18)
    ]
    plan = build_block_plan(model, num_blocks=55)
    assert all(len(plan.block_units(k)) == 1 for k in range(55))
    plan = build_block_plan(model, num_blocks=32)
    sizes = [len(plan.block_units(k)) for k in range(32)]
    assert sizes == [2] * 23 + [1] * 9
    with pytest.raises(PartitionError, match='more than the 55 trainable'):
        build_block_plan(model, num_blocks=56)


def test_cifar_resnet_is_he_et_al_6n_plus_2():
    model = build('mmpretrain', cifar_resnet(32))
    convs = [m for m in model.backbone.modules()
             if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)]
    assert len(convs) == 31  # + the FC = 32 weighted layers
    assert [convs[0].out_channels, model.backbone.layer2[0].out_channels,
            model.backbone.layer3[-1].out_channels] == [16, 32, 64]
    out = model.backbone(torch.zeros(2, 3, 32, 32))
    assert out[-1].shape == (2, 64, 8, 8)
    params = sum(p.numel() for p in model.backbone.parameters())
    assert 0.45e6 < params < 0.48e6  # ResNet-32: 0.46M (He et al., Table 6)


@pytest.mark.parametrize('backbone, count, first', [
    (dict(type='ResNet', depth=50, base_channels=8, stem_channels=8), 16,
     'layer1.0'),
    (dict(type='ResNetV1c', depth=50, base_channels=8, stem_channels=8), 16,
     'layer1.0'),
    (dict(type='ResNetV1d', depth=50, base_channels=8, stem_channels=8), 16,
     'layer1.0'),
    (dict(type='ResNeXt', depth=50, groups=4, width_per_group=4,
          base_channels=8, stem_channels=8), 16, 'layer1.0'),
    (dict(type='ResNet_CIFAR', depth=18, base_channels=8, stem_channels=8),
     8, 'layer1.0'),
])
def test_mmpretrain_resnets(backbone, count, first):
    model = build('mmpretrain', classifier(backbone, 256))
    units, output_units = backbone_units(model)
    assert len(units) == count and units[0].name == f'backbone.{first}'
    assert output_units == [count - 1]
    plan = build_block_plan(model, num_blocks=4)
    assert plan.num_blocks == 4
    # deep stems (V1c/V1d) stay in the first block: no unit of their own
    assert all('stem' not in u.name for u in units)


def test_vgg13_k10_one_block_per_conv():
    model = build('mmpretrain', vgg13(num_classes=1000))
    units, output_units = backbone_units(model)
    assert [u.name for u in units] == [
        f'backbone.features.{j}'
        for j in (0, 1, 3, 4, 6, 7, 9, 10, 12, 13)
    ]  # the max-pools (2, 5, 8, 11, 14) are no units
    assert output_units == [9]  # the classifier's output, last block
    plan = build_block_plan(model, num_blocks=10)
    assert all(len(plan.block_units(k)) == 1 for k in range(10))
    assert plan.next_unit(1).name == 'backbone.features.3'
    with pytest.raises(PartitionError, match='more than the 10 trainable'):
        build_block_plan(model, num_blocks=11)
    # Stage outputs map to the stage's last conv.
    model = build('mmpretrain', vgg13(out_indices=(2, 4)))
    assert backbone_units(model)[1] == [5, 9]


def test_vgg13_trains_block_by_block():
    """Each conv is a block: every one learns, and only from its own local
    loss (the host head's loss weight does not reach blocks 1..K-1)."""
    def step(head_weight):
        model = build('mmpretrain', vgg13())
        model.head.loss_module.loss_weight = head_weight
        wrapper = local_wrapper(model, lr=0.01, method='man++',
                                num_blocks=10,
                                aux_head=dict(type='ClsAuxHead'))
        before = {n: p.detach().clone()
                  for n, p in model.named_parameters()}
        model.train_step(cls_batch(), wrapper)
        plan = wrapper.plan
        return plan, {n: p.detach() - before[n]
                      for n, p in model.named_parameters()}

    plan, base = step(1.0)
    _, loud = step(100.0)
    for k, unit in enumerate(plan.units):
        name = f'{unit.name}.conv.weight'
        assert base[name].abs().sum() > 0, name
        if k < plan.num_blocks - 1:
            torch.testing.assert_close(loud[name], base[name], msg=name)
        else:
            assert not torch.allclose(loud[name], base[name]), name


def test_mmpretrain_vision_transformer():
    model = build('mmpretrain', vit())
    plan = build_block_plan(model, num_blocks=2)
    assert ends(plan) == ['layers.1'] and plan.output_units == (3, )
    wrapper = local_wrapper(model, method='man++', num_blocks=4,
                            aux_head=dict(type='ClsAuxHead'))
    assert wrapper.aux.heads[0].tokens
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    model.train_step(cls_batch(num_classes=3), wrapper)
    for k in range(4):
        name = f'backbone.layers.{k}.ffn.layers.1.weight'
        assert not torch.equal(before[name], model.get_parameter(name))
    assert 'train/local3_loss_cls' in wrapper.message_hub.log_scalars


def test_memory_balanced_blocks_on_a_classifier():
    # synthetic classification batches let `balance` measure the units
    model = build('mmpretrain', cifar_resnet(20))
    wrapper = local_wrapper(model, method='man++', num_blocks=4,
                            balance=dict(img_scale=(32, 32)))
    sizes = [len(wrapper.plan.block_units(k)) for k in range(4)]
    assert sum(sizes) == 10 and sizes != [3, 3, 2, 2]
    # the high-resolution first stage gets the smaller blocks
    assert sizes[0] <= sizes[-1]
