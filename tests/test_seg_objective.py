"""Local objectives of segmentation blocks: the FCN head, per block."""
import pytest
import torch

from helpers import build, local_wrapper, seg_batch, seg_model_cfg
from mmman.heads import DecodeAuxHead, ImageClassAuxHead, tokens_to_map
from mmman.utils.memory import SavedTensorsMeter


@pytest.mark.parametrize('shape, length, grid', [
    ((64, 64), 65, (8, 8)),  # class token dropped
    ((64, 128), 128, (8, 16)),  # no extra token
    ((512, 1024), 2049, (32, 64)),
])
def test_tokens_to_map(shape, length, grid):
    x = torch.arange(2 * length * 3.0).reshape(2, length, 3)
    out = tokens_to_map(x, shape)
    assert out.shape == (2, 3, *grid)
    extra = length - grid[0] * grid[1]
    assert torch.equal(out[0, :, 0, 0], x[0, extra])  # first patch token


def test_tokens_to_map_refuses_a_grid_that_does_not_fit():
    with pytest.raises(ValueError, match='cannot lay 7 tokens'):
        tokens_to_map(torch.zeros(1, 7, 3), (64, 64))


def test_decode_aux_head_is_mmseg_fcn_with_ignore_and_resize():
    model = build('mmseg', seg_model_cfg())  # registers MMSeg modules
    head = DecodeAuxHead(in_channels=16, num_classes=4)
    assert type(head.head).__name__ == 'FCNHead'
    assert head.head.ignore_index == 255
    data = model.data_preprocessor(seg_batch(), True)
    x = torch.randn(2, 16, 8, 8, requires_grad=True)  # 1/8 of the labels
    losses = head.loss(x, data['data_samples'])
    assert set(losses) == {'loss_ce', 'acc_seg'}
    losses['loss_ce'].backward()
    assert x.grad.abs().sum() > 0


def test_decode_aux_head_reduces_wide_inputs_first():
    model = build('mmseg', seg_model_cfg())
    samples = model.data_preprocessor(seg_batch(), True)['data_samples']
    x = torch.randn(2, 128, 16, 16)  # stride 4: the head, not the loss
    heads = [DecodeAuxHead(in_channels=128, num_classes=4, reduce_channels=r)
             for r in (8, None)]
    assert heads[0].head.convs[0].conv.in_channels == 8
    assert heads[0].head.channels == 8
    assert heads[1].head.convs[0].conv.in_channels == 128
    saved = []
    for head in heads:
        y = x.clone().requires_grad_()
        with SavedTensorsMeter() as meter:
            head.loss(y, samples)['loss_ce'].backward()
        assert y.grad.abs().sum() > 0
        saved.append(meter.peak_bytes)
    assert saved[0] < saved[1] / 2


def test_per_block_heads():
    model = build('mmseg', seg_model_cfg())
    wrapper = local_wrapper(
        model,
        method='man++',
        num_blocks=3,
        aux_head=[dict(type='DecodeAuxHead'),
                  dict(type='ImageClassAuxHead')])
    assert isinstance(wrapper.aux.heads[0], DecodeAuxHead)
    assert isinstance(wrapper.aux.heads[1], ImageClassAuxHead)
    model.train_step(seg_batch(), wrapper)
    scalars = wrapper.message_hub.log_scalars
    assert 'train/local1_loss_ce' in scalars
    assert 'train/local2_loss_cls' in scalars


def test_per_block_lists_must_match_the_blocks():
    model = build('mmseg', seg_model_cfg())
    with pytest.raises(ValueError, match='for 2 local blocks'):
        local_wrapper(model, method='dgl', num_blocks=3,
                      aux_head=[dict(type='DecodeAuxHead')])
