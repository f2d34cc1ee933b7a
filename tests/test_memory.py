"""The saved-activation meter, and local learning really lowering it."""
import torch
import torch.nn as nn

from helpers import (NUM_CLASSES, build, local_wrapper, seg_batch,
                     seg_model_cfg)
from mmman.utils import (PeakMemory, SavedTensorsMeter, current_rss_bytes,
                         measure_train_step)


def test_meter_counts_saved_activations_once_and_frees_them():
    lin = nn.Linear(256, 256)
    x = torch.randn(64, 256, requires_grad=True)
    with SavedTensorsMeter() as meter:
        h = torch.relu(lin(x))  # saves x (input) and the relu output
        y = (h * h).sum()  # saves h twice: one storage
        peak_forward = meter.current_bytes
        y.backward()
    act = 64 * 256 * 4
    # x (leaf input that requires grad) is a parameter-like leaf: not counted.
    assert peak_forward == act
    assert meter.peak_bytes == act
    assert meter.current_bytes == 0  # graph freed -> released


def test_meter_frees_forward_only_graphs_without_the_garbage_collector():
    import gc
    lin = nn.Linear(64, 64)
    gc.disable()
    try:
        with SavedTensorsMeter() as meter:
            out = torch.sigmoid(lin(torch.randn(8, 64)))  # saves its output
            assert meter.current_bytes > 0
            del out  # no backward: refcounting alone must free the graph
        assert meter.current_bytes == 0
    finally:
        gc.enable()


def test_meter_sees_early_release():
    a = nn.Linear(128, 128)
    b = nn.Linear(128, 128)
    x = torch.randn(32, 128)
    with SavedTensorsMeter() as meter:
        h = torch.relu(a(x))
        h.sum().backward()  # frees block a before block b runs
        torch.relu(b(h.detach())).sum().backward()
    with SavedTensorsMeter() as joint:
        torch.relu(b(torch.relu(a(x)))).sum().backward()
    assert meter.peak_bytes < joint.peak_bytes


def _peak_rise(allocate_bytes):
    """PeakMemory's CPU reading minus the resident size when it started."""
    with PeakMemory('cpu') as peak:
        start = current_rss_bytes()
        if allocate_bytes:
            big = torch.ones(allocate_bytes // 4)  # float32, touched
            del big
    return peak.peak_bytes - start


def test_peak_memory_reads_process_peak():
    size = 256 * 2**20
    # An earlier, larger peak of the process must not leak into a reading.
    torch.ones(2 * size // 4).sum()
    idle = _peak_rise(0)
    busy = _peak_rise(size)
    assert abs(idle) < size // 8, f'nothing allocated, peak rose {idle}'
    assert 0.9 * size < busy < 1.5 * size, (
        f'peak rose {busy} bytes for a {size}-byte tensor')


def _light_head_model():
    """ResNet-18 (16 base channels, plain strides) + a light FCN head: the
    backbone holds most activations, as in a classification network."""
    cfg = seg_model_cfg()
    cfg['backbone'].update(
        base_channels=16,
        stem_channels=16,
        strides=(1, 2, 2, 2),
        dilations=(1, 1, 1, 1))
    cfg['decode_head'] = dict(
        type='FCNHead',
        in_channels=128,
        in_index=3,
        channels=8,
        num_convs=1,
        concat_input=False,
        num_classes=NUM_CLASSES + 1,
        dropout_ratio=0.0,
        align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss'))
    cfg.pop('auxiliary_head')
    return build('mmseg', cfg)


def _saved_bytes(num_blocks):
    model = _light_head_model()
    model.train()
    # the light image-level head: this is about the blocks, not the heads
    wrapper = local_wrapper(model, method='man++', num_blocks=num_blocks,
                            aux_head=dict(type='ImageClassAuxHead'))
    model.train_step(seg_batch(n=2, size=64), wrapper)  # warm up
    return measure_train_step(model, seg_batch(n=2, size=64),
                              wrapper)['peak_saved_bytes']


def test_saved_activations_fall_as_k_grows():
    k1, k2, k4 = (_saved_bytes(k) for k in (1, 2, 4))
    print(f'peak saved activation bytes: K=1 {k1}, K=2 {k2}, K=4 {k4}')
    assert k1 > k2 > k4
