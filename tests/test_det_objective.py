"""Local objectives of detection blocks: dense CenterNet heatmaps and the
image-level classifier."""
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from helpers import build, det_batch, det_model_cfg, local_wrapper
from mmman.heads import (DenseDetAuxHead, ImageClassAuxHead,
                         SharedTrunkCenterNetHead)
from mmman.utils import DispatchCounter
from mmman.utils.memory import SavedTensorsMeter


def test_dense_head_is_centernet_on_the_box_centres():
    model = build('mmdet', det_model_cfg())
    data = model.data_preprocessor(det_batch(size=64), True)
    head = DenseDetAuxHead(in_channels=8, num_classes=3)
    assert type(head.head).__name__ == 'SharedTrunkCenterNetHead'
    x = torch.randn(2, 8, 16, 16, requires_grad=True)  # stride 4
    losses = head.loss(x, data['data_samples'])
    assert set(losses) == {
        'loss_center_heatmap', 'loss_wh', 'loss_offset'
    }
    sum(losses.values()).backward()
    # The heatmap loss pulls hardest at the box centres (stride 4).
    grad = x.grad.abs().sum(1)[0]
    box = data['data_samples'][0].gt_instances.bboxes[0] / 4
    cy, cx = int((box[1] + box[3]) / 2), int((box[0] + box[2]) / 2)
    assert grad[cy, cx] > grad.mean()


def test_dense_head_loss_weight_scales_every_term():
    model = build('mmdet', det_model_cfg())
    samples = model.data_preprocessor(det_batch(size=64), True)['data_samples']
    x = torch.randn(2, 8, 16, 16)
    losses = []
    for weight in (1.0, 0.1):
        torch.manual_seed(0)
        head = DenseDetAuxHead(in_channels=8, num_classes=3,
                               loss_weight=weight)
        losses.append(head.loss(x, samples))
    for key, value in losses[0].items():
        torch.testing.assert_close(losses[1][key], value * 0.1)


def _saved_and_input_grad(head, x, samples):
    x = x.clone().requires_grad_()
    with SavedTensorsMeter() as meter:
        sum(head.loss(x, samples).values()).backward()
    return meter.peak_bytes, x.grad


def test_dense_head_reduces_wide_inputs_first():
    model = build('mmdet', det_model_cfg())
    samples = model.data_preprocessor(det_batch(size=64), True)['data_samples']
    x = torch.randn(2, 64, 16, 16)
    torch.manual_seed(0)
    narrow = DenseDetAuxHead(in_channels=64, num_classes=3, reduce_channels=8)
    full = DenseDetAuxHead(in_channels=64, num_classes=3,
                           reduce_channels=None)
    # CenterNet reads 8 channels (and is 8 wide) after a 1x1 conv-BN-ReLU
    assert narrow.head.heatmap_head[0].in_channels == 8
    assert narrow.reduce.conv.in_channels == 64
    assert full.head.heatmap_head[0].in_channels == 64
    assert isinstance(full.reduce, torch.nn.Identity)
    # none by default, nor when the input is not wider
    assert isinstance(DenseDetAuxHead(64, 3).reduce, torch.nn.Identity)
    assert isinstance(DenseDetAuxHead(64, 3, reduce_channels=64).reduce,
                      torch.nn.Identity)
    narrow_bytes, grad = _saved_and_input_grad(narrow, x, samples)
    full_bytes, _ = _saved_and_input_grad(full, x, samples)
    assert grad.abs().sum() > 0  # the block is still trained through it
    assert narrow_bytes < 0.7 * full_bytes  # both save the 64-channel input


def test_dense_head_lays_vit_tokens_on_the_patch_grid():
    model = build('mmdet', det_model_cfg())
    data = model.data_preprocessor(det_batch(size=64), True)
    head = DenseDetAuxHead(in_channels=8, num_classes=3, tokens=True)
    x = torch.randn(2, 1 + 16, 8, requires_grad=True)  # cls + 4x4 patches
    losses = head.loss(x, data['data_samples'])
    sum(losses.values()).backward()
    assert x.grad[:, 0].abs().sum() == 0  # class token dropped
    assert x.grad[:, 1:].abs().sum() > 0


@pytest.mark.parametrize('aux_head, loss_key', [
    (dict(type='DenseDetAuxHead'), 'loss_center_heatmap'),
    (dict(type='ImageClassAuxHead'), 'loss_cls'),
])
def test_either_objective_trains_its_heads(aux_head, loss_key):
    model = build('mmdet', det_model_cfg())
    wrapper = local_wrapper(
        model, method='man++', num_blocks=3, aux_head=aux_head)
    kind = DenseDetAuxHead if 'Dense' in aux_head['type'] else \
        ImageClassAuxHead
    assert all(isinstance(h, kind) for h in wrapper.aux.heads)
    before = [p.detach().clone() for p in wrapper.aux.heads.parameters()]
    model.train_step(det_batch(), wrapper)
    scalars = wrapper.message_hub.log_scalars
    for k in (1, 2):
        assert f'train/local{k}_{loss_key}' in scalars
    after = list(wrapper.aux.heads.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(after, before))


def _head_flops(head, x, samples):
    with FlopCounterMode(display=False) as counter:
        sum(head.loss(x, samples).values()).backward()
    return counter.get_total_flops()


def test_shared_trunk_head_is_centernet_with_one_3x3_conv():
    model = build('mmdet', det_model_cfg())
    samples = model.data_preprocessor(det_batch(size=64), True)['data_samples']
    x = torch.randn(2, 32, 16, 16, requires_grad=True)
    torch.manual_seed(0)
    shared = DenseDetAuxHead(32, 3)  # the default
    host = DenseDetAuxHead(32, 3, head=dict(type='mmdet.CenterNetHead'))
    assert isinstance(shared.head, SharedTrunkCenterNetHead)
    assert not isinstance(host.head, SharedTrunkCenterNetHead)
    # The host's branches, each given the shared conv as its own 3x3 conv
    # and the shared head's 1x1 conv, compute the same losses.
    for name in ('heatmap_head', 'wh_head', 'offset_head'):
        branch = getattr(host.head, name)
        branch[0].load_state_dict(shared.head.trunk[0].state_dict())
        branch[2].load_state_dict(getattr(shared.head, name)[0].state_dict())
    # CenterNet's initialisation: heatmap prior 0.1, small size/offset convs
    prior = shared.head.heatmap_head[0].bias
    assert torch.allclose(prior, torch.tensor(-2.1972), atol=1e-4)
    assert shared.head.wh_head[0].weight.std() < 0.01
    got, want = shared.loss(x, samples), host.loss(x, samples)
    assert set(got) == set(want)
    for key in want:
        torch.testing.assert_close(got[key], want[key])
    sum(got.values()).backward()
    assert x.grad.abs().sum() > 0
    # a third of the 3x3 work, forward and backward
    flops = _head_flops(shared, x, samples), _head_flops(host, x, samples)
    assert flops[0] < 0.4 * flops[1]


def test_separable_trunk_is_the_depthwise_then_pointwise_conv():
    """separable=True: the same losses as a dense 3x3 trunk whose kernel
    is the depthwise kernel times the pointwise weights, at a fraction of
    the work."""
    model = build('mmdet', det_model_cfg())
    samples = model.data_preprocessor(det_batch(size=64), True)['data_samples']
    x = torch.randn(2, 64, 16, 16, requires_grad=True)
    torch.manual_seed(0)
    sep = DenseDetAuxHead(64, 3, head=dict(separable=True))
    dense = DenseDetAuxHead(64, 3)
    dw = sep.head.trunk.depthwise_conv.conv
    pw = sep.head.trunk.pointwise_conv.conv
    assert dw.groups == 64 and dw.kernel_size == (3, 3) and \
        pw.kernel_size == (1, 1) and pw.out_channels == 64
    with torch.no_grad():  # W[o, i] = pw[o, i] * dw[i]
        conv = dense.head.trunk[0]
        conv.weight.copy_(pw.weight[:, :, 0, 0, None, None] *
                          dw.weight[:, 0][None])
        conv.bias.copy_(pw.bias + pw.weight[:, :, 0, 0] @ dw.bias)
        for name in ('heatmap_head', 'wh_head', 'offset_head'):
            getattr(dense.head, name).load_state_dict(
                getattr(sep.head, name).state_dict())
    got, want = sep.loss(x, samples), dense.loss(x, samples)
    for key in want:
        torch.testing.assert_close(got[key], want[key], rtol=1e-4,
                                   atol=1e-5)
    sum(got.values()).backward()
    assert dw.weight.grad.abs().sum() > 0 and x.grad.abs().sum() > 0
    flops = _head_flops(sep, x, samples), _head_flops(dense, x, samples)
    assert flops[0] < 0.5 * flops[1]  # the trunk: 1/9 + 1/64 of it


def test_batched_centernet_targets_equal_the_hosts_without_host_syncs():
    """SharedTrunkCenterNetHead.get_targets: MMDet's targets exactly
    (heatmaps, sizes, offsets, weights, avg_factor) for boxes of every
    size, at the borders, and sharing a centre cell (the later box's size
    wins, as in the host's loop), with no host sync per box."""
    from mmdet.models.dense_heads import CenterNetHead
    torch.manual_seed(0)
    img, feat = (96, 160), (2, 3, 24, 40)  # stride 4
    boxes, labels = [], []
    for n in (40, 0, 25):  # one image without boxes
        xy = torch.rand(n, 2) * torch.tensor([150., 90.])
        wh = torch.rand(n, 2) ** 2 * torch.tensor([150., 90.]) + 0.5
        b = torch.cat([xy, (xy + wh).minimum(torch.tensor([159., 95.]))], 1)
        boxes.append(b)
        labels.append(torch.randint(0, 3, (n, )))
    # two boxes on one centre cell, and a box at the image's corner
    boxes[0][1] = boxes[0][0] + torch.tensor([-2., -1., 2., 1.])
    boxes[2][0] = torch.tensor([0., 0., 2., 3.])
    centre = [(b[:2] + b[2:]) / 8 for b in boxes[0][:2]]  # stride 4
    assert torch.equal(centre[0].int(), centre[1].int())
    feat = (3, ) + feat[1:]
    host = CenterNetHead(8, 8, num_classes=3)
    ours = SharedTrunkCenterNetHead(8, 8, num_classes=3)
    want, want_avg = host.get_targets(boxes, labels, feat, img)
    with DispatchCounter() as counter:
        got, got_avg = ours.get_targets(boxes, labels, feat, img)
    assert counter.host_syncs == 0
    assert int(got_avg) == int(want_avg) > 1
    for key in want:
        assert torch.equal(got[key], want[key]), key
    cx, cy = centre[1].int().tolist()  # the later box's size
    assert want['wh_target'][0, 0, cy, cx] == (boxes[0][1, 2] -
                                               boxes[0][1, 0]) / 4
