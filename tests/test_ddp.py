"""DDP on 2 CPU processes (gloo).

* GroupNorm model: 2 processes == 1 process on the global batch, although
  the ranks start from different random weights (the model and the auxiliary
  networks are broadcast from rank 0), with weight decay and a parameter no
  loss uses (it keeps grad=None and is not decayed), and every gradient is
  all-reduced exactly once per step.
* BatchNorm model: with ``broadcast_buffers`` (DDP's default) the buffers of
  the model *and* of the auxiliary networks are rank 0's at every forward, as
  DDP does for the model alone.
"""
import os
from unittest import mock

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn as nn

from helpers import (build, free_port, local_wrapper, seg_batch,
                     seg_model_cfg)

STEPS = 3
GLOBAL_BATCH = 4
WEIGHT_DECAY = 0.1


def _model(norm, seed):
    cfg = seg_model_cfg(norm=norm)
    cfg['decode_head']['dropout_ratio'] = 0.0
    cfg['auxiliary_head']['dropout_ratio'] = 0.0
    model = build('mmseg', cfg, seed=seed)
    model.register_parameter('unused', nn.Parameter(torch.ones(3)))
    return model


def _make_wrapper(model, norm, **local_cfg):
    norm_cfg = dict(type='GN', num_groups=4) if norm == 'GN' else dict(
        type='BN')
    return local_wrapper(
        model,
        optimizer=dict(
            type='SGD', lr=0.05, momentum=0.9, weight_decay=WEIGHT_DECAY),
        method='man++',
        num_blocks=3,
        aux_head=dict(type='ImageClassAuxHead', norm_cfg=norm_cfg),
        **local_cfg)


def _shard(step, rank, world):
    batch = seg_batch(n=GLOBAL_BATCH, seed=step)
    part = slice(rank * GLOBAL_BATCH // world,
                 (rank + 1) * GLOBAL_BATCH // world)
    return dict(
        inputs=batch['inputs'][part], data_samples=batch['data_samples'][part])


def _state(module, wrapper):
    state = {f'model.{k}': v.clone() for k, v in module.state_dict().items()}
    state.update({
        f'aux.{k}': v.clone()
        for k, v in wrapper.aux.state_dict().items()
    })
    return state


def _run_gn(rank, world):
    from mmengine.model import MMDistributedDataParallel
    torch.manual_seed(100 + rank)  # ranks start different
    model = _model('GN', seed=100 + rank)
    ddp = MMDistributedDataParallel(module=model)
    wrapper = _make_wrapper(ddp, 'GN')
    reduced = []
    real = dist.all_reduce

    def counting(tensor, *args, **kwargs):
        reduced.append(tensor.numel())
        return real(tensor, *args, **kwargs)

    with mock.patch.object(dist, 'all_reduce', counting):
        for step in range(STEPS):
            ddp.train_step(_shard(step, rank, world), wrapper)
    return _state(model, wrapper), reduced


def _run_bn(rank, world):
    """Buffers seen by every BN layer (model and aux) when it runs."""
    from mmengine.model import MMDistributedDataParallel
    torch.manual_seed(200 + rank)
    model = _model('BN', seed=200 + rank)
    ddp = MMDistributedDataParallel(module=model)
    wrapper = _make_wrapper(ddp, 'BN')
    seen = []

    def record(module, args):
        # Forward calls only: eta's recomputation in the local backward
        # reruns its BNs on the statistics that forward left (rank-local,
        # restored afterwards; a train-mode BN does not read them).
        if torch._C._current_graph_task_id() == -1:
            seen.append(module.running_mean.clone())

    for m in list(model.modules()) + list(wrapper.aux.modules()):
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.register_forward_pre_hook(record)
    for step in range(STEPS):
        ddp.train_step(_shard(step, rank, world), wrapper)
    return seen


def _worker(rank, world, port, out_dir):
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    dist.init_process_group('gloo', rank=rank, world_size=world)
    torch.set_num_threads(1)
    gn_state, reduced = _run_gn(rank, world)
    bn_seen = _run_bn(rank, world)
    torch.save(dict(gn=gn_state, reduced=reduced, bn=bn_seen),
               os.path.join(out_dir, f'{rank}.pth'))
    dist.destroy_process_group()


def test_two_process_ddp(tmp_path):
    mp.spawn(
        _worker, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    rank0 = torch.load(tmp_path / '0.pth')
    rank1 = torch.load(tmp_path / '1.pth')

    # 1 process on the global batch, from rank 0's initial weights.
    torch.manual_seed(100)
    model = _model('GN', seed=100)
    wrapper = _make_wrapper(model, 'GN')
    initial = _state(model, wrapper)
    for step in range(STEPS):
        model.train_step(_shard(step, 0, 1), wrapper)
    single = _state(model, wrapper)

    for key, value in single.items():
        assert torch.equal(rank0['gn'][key], rank1['gn'][key]), \
            f'ranks differ: {key}'
        torch.testing.assert_close(
            rank0['gn'][key], value, rtol=1e-4, atol=1e-6, msg=key)
    moved = [k for k in single if k.startswith('model.backbone.layer1')
             and not torch.equal(single[k], initial[k])]
    assert moved, 'block 1 did not train'
    # A parameter no loss uses: no gradient, so no weight decay, anywhere.
    assert torch.equal(rank0['gn']['model.unused'], torch.ones(3))
    assert model.unused.grad is None

    # One all-reduce of the "has a gradient" flags and one of the gradients
    # per step: no gradient is reduced twice, the unused one never.
    trainable = [p for g in wrapper.optimizer.param_groups
                 for p in g['params'] if p.requires_grad]
    used = sum(p.numel() for p in trainable if p is not model.unused)
    assert rank0['reduced'] == [len(trainable), used] * STEPS

    # BN: every layer, model and aux, runs with rank 0's buffers.
    assert len(rank0['bn']) == len(rank1['bn']) > 0
    for a, b in zip(rank0['bn'], rank1['bn']):
        assert torch.equal(a, b)
