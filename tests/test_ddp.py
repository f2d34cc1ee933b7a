"""Under DDP every gradient, including those backpropagated during forward,
is all-reduced: 2 CPU processes (gloo) == 1 process on the global batch."""
import os
import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from helpers import build, local_wrapper, seg_batch, seg_model_cfg

STEPS = 3
GLOBAL_BATCH = 4


def _model():
    cfg = seg_model_cfg(norm='GN')  # no batch statistics: ranks comparable
    cfg['decode_head']['dropout_ratio'] = 0.0
    cfg['auxiliary_head']['dropout_ratio'] = 0.0
    return build('mmseg', cfg, seed=0)


def _train(model, wrapper, rank, world):
    per_rank = GLOBAL_BATCH // world
    for step in range(STEPS):
        batch = seg_batch(n=GLOBAL_BATCH, seed=step)
        part = slice(rank * per_rank, (rank + 1) * per_rank)
        model.train_step(
            dict(
                inputs=batch['inputs'][part],
                data_samples=batch['data_samples'][part]), wrapper)


def _state(module, wrapper):
    state = {f'model.{k}': v.clone() for k, v in module.state_dict().items()}
    state.update({
        f'aux.{k}': v.clone()
        for k, v in wrapper.aux.state_dict().items()
    })
    return state


def _make_wrapper(model):
    return local_wrapper(
        model,
        lr=0.05,
        method='man++',
        num_blocks=3,
        aux_head=dict(
            type='ImageClassAuxHead', norm_cfg=dict(type='GN',
                                                    num_groups=4)))


def _worker(rank, world, port, out_dir):
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    dist.init_process_group('gloo', rank=rank, world_size=world)
    torch.set_num_threads(1)
    from mmengine.model import MMDistributedDataParallel
    model = _model()
    ddp = MMDistributedDataParallel(module=model)
    wrapper = _make_wrapper(ddp)
    _train(ddp, wrapper, rank, world)
    torch.save(_state(model, wrapper), os.path.join(out_dir, f'{rank}.pth'))
    dist.destroy_process_group()


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_two_process_ddp_equals_single_process(tmp_path):
    mp.spawn(
        _worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    rank0 = torch.load(tmp_path / '0.pth')
    rank1 = torch.load(tmp_path / '1.pth')

    model = _model()
    wrapper = _make_wrapper(model)
    _train(model, wrapper, 0, 1)
    single = _state(model, wrapper)

    initial = _state(_model(), _make_wrapper(_model()))
    for key, value in single.items():
        assert torch.equal(rank0[key], rank1[key]), f'ranks differ: {key}'
        torch.testing.assert_close(
            rank0[key], value, rtol=1e-4, atol=1e-6, msg=key)
    moved = [k for k in single if k.startswith('model.backbone.layer1')
             and not torch.equal(single[k], initial[k])]
    assert moved, 'block 1 did not train'
