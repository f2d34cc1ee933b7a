"""What DDP would do, done by hand for local learning.

MMEngine's DDP reducer arms only after the forward pass returns, so the
backward calls made during forward (the local losses) would never be
all-reduced; the forward therefore runs in ``no_sync()`` and the wrapper
synchronises gradients and buffers itself.
"""
from typing import Dict, List, Sequence

import torch
from mmengine.dist import all_reduce, all_reduce_params, broadcast
from mmengine.logging import print_log
from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors


def broadcast_coalesced(tensors: Sequence[torch.Tensor], src: int = 0) -> None:
    """Broadcast ``tensors`` from ``src`` in one message per dtype/device."""
    buckets: Dict[tuple, List[torch.Tensor]] = {}
    for t in tensors:
        buckets.setdefault((t.dtype, t.device), []).append(t)
    for bucket in buckets.values():
        flat = _flatten_dense_tensors(bucket)
        broadcast(flat, src=src)
        for t, synced in zip(bucket, _unflatten_dense_tensors(flat, bucket)):
            t.copy_(synced)


def all_reduce_grads(params: Sequence[torch.nn.Parameter]) -> None:
    """Mean of the gradients over ranks, coalesced; a parameter without a
    gradient on every rank keeps ``grad=None``, as in one process."""
    params = [p for p in params if p.requires_grad]
    if not params:
        return
    has_grad = torch.tensor([p.grad is not None for p in params],
                            dtype=torch.uint8,
                            device=params[0].device)
    all_reduce(has_grad, op='max')
    grads = []
    for p, used in zip(params, has_grad.tolist()):
        if used:
            if p.grad is None:  # used on another rank only
                p.grad = torch.zeros_like(p)
            grads.append(p.grad)
    all_reduce_params(grads, coalesce=True, op='mean')


def report_unused_params(named_params) -> None:
    """What MMDDP's ``detect_anomalous_params`` reports, for every block:
    trainable parameters that no loss reached (MMDDP would look only at the
    model loss's graph and report blocks 1..K-1)."""
    for name, p in named_params:
        if p.requires_grad and p.grad is None:
            print_log(
                f'{name} with shape {p.size()} is not in the computational '
                'graph of any loss',
                logger='current',
                level=40)
