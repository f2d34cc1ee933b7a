"""Block-parallel training: K local blocks on K processes at once.

Local learning's blocks need no gradient from later blocks, so they can
train at the same time, like a pipeline with no backward pass through it
(``local_cfg.parallel=dict(type='blocks')``, launched with
``tools/dist_train.sh CONFIG K``). For batch t, block k's process receives
block k-1's detached output for t, runs its block and local loss, steps and
sends its own output on, while block k-1's process already works on t+1.

- **Roles.** Block k (0-based) runs on rank ``(k + 1) % K``: rank 0 owns the
  last block (neck, heads, the model's loss), so what MMEngine does on rank 0
  (logging, saving) sees the model loss. The local losses of the blocks
  before it travel with the activations and are logged there.
- **Data.** Every rank builds the whole model; its optimizer holds only its
  block's parameters (:func:`own_params`). Block 1's rank loads the batches
  (a train sampler not split over ranks: :class:`BlockParallelSampler`),
  preprocesses them and sends them on with its output; the other ranks'
  train datasets load nothing (:class:`BlockParallelBatchSource`).
- **The forward pass of block k.** The units of earlier blocks are shadowed:
  each returns what block k-1 sent for it (a real, detached tensor for a unit
  whose output the backbone returns, e.g. an FPN input; zeros of the sent
  shape otherwise). Block k's first unit receives block k-1's output (its
  whole call, e.g. Swin's ``hw_shape``). At block k+1's first unit the local
  step runs as in one process, the message goes out and :class:`StageDone`
  ends the forward pass. The stem (what runs before the backbone's first
  unit) runs on block 1's rank only; the others return zeros shaped as
  there.
- **Transport.** ``torch.distributed`` point-to-point (gloo on CPU, NCCL on
  GPU), all ``isend``: a header, a pickled skeleton of plain values and
  tensor shapes (not resent when unchanged), one flat buffer per dtype
  (:class:`P2PChannel`); at most ``depth`` messages in flight per channel.
- **What needs the next block's weights.** MAN's eta'' is an EMA of block
  k+1's first unit: that unit's process sends its state after every step and
  eta'' follows it ``eta.ema_delay`` steps late (default 1;
  :class:`~mmman.local.man.DelayedSource`), which one process emulates
  exactly with the same ``ema_delay``. MLAAN's cascade runs the whole next
  block inside block k's loss: refused.
- **Whole-model moments** (validation, checkpoints, the end of training):
  every tensor is broadcast from the rank that owns it (:meth:`sync_model`),
  so every rank holds the trained model; a checkpoint is the plain host
  checkpoint plus each block's optimizer and auxiliary state.
"""
import math
import pickle
import time
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional

import torch
import torch.distributed as dist
import torch.nn as nn
from mmengine.dataset import DefaultSampler, InfiniteSampler
from mmengine.dist import get_rank, get_world_size
from mmengine.logging import print_log
from mmengine.structures import BaseDataElement
from mmengine.registry import DATA_SAMPLERS, DATASETS, MODEL_WRAPPERS

from mmman.local.auxiliary import LocalAuxiliary
from mmman.local.man import MomentumAuxNet, module_state
from mmman.local.partition import BlockPlan
from mmman.local.unit_trace import map_nested, map_tensors

from .block_params import block_param_groups, module_tensors, tensor_owners
from .ddp_sync import broadcast_coalesced
from .unit_checkpoint import shadowed_forwards

ACTIVATIONS, SOURCES = 1, 2  # message tags
PARALLEL_KEYS = ('type', 'depth', 'timeline', 'balance', 'img_scale',
                 'batch_size', 'cache_dir', 'loader')


class StageDone(Exception):
    """Ends a block's part of the forward pass (after its local step)."""


class BlockParallelError(ValueError):
    """A block-parallel configuration that cannot run."""


def stage_rank(stage: int, num_blocks: int) -> int:
    """The rank that trains block ``stage`` (0-based): rank 0 the last."""
    return (stage + 1) % num_blocks


def resolve_parallel_cfg(parallel, method: str, mlaan_cfg, budget,
                         eta_cfg: Optional[dict]) -> Optional[dict]:
    """Checked ``local_cfg.parallel`` (None: one process).

    Sets ``eta_cfg['ema_delay']`` to 1 when MAN's eta'' has none (a process
    cannot follow a block that has not stepped yet).
    """
    if parallel is None:
        return None
    parallel = dict(parallel)
    unknown = set(parallel) - set(PARALLEL_KEYS)
    if unknown or parallel.get('type', 'blocks') != 'blocks':
        raise BlockParallelError(
            "local_cfg.parallel takes dict(type='blocks', depth=2, "
            f"timeline=False, balance=None | 'time'), not {parallel}.")
    if parallel.get('balance') not in (None, 'time'):
        raise BlockParallelError(
            "local_cfg.parallel.balance: None (the config's split) or "
            f"'time' (blocks sized by measured compute), not "
            f"{parallel['balance']!r}.")
    depth = parallel.setdefault('depth', 2)
    if not isinstance(depth, int) or depth < 1:
        raise BlockParallelError(
            f'local_cfg.parallel.depth (messages in flight) must be an '
            f'integer >= 1, got {depth!r}.')
    if method == 'e2e':
        raise BlockParallelError(
            "local_cfg.parallel trains local blocks on their own processes; "
            "method='e2e' has none.")
    if mlaan_cfg is not None:
        raise BlockParallelError(
            'local_cfg.parallel: MLAAN cannot be pipelined: its cascade runs '
            "block k+1's units inside block k's local loss, which would need "
            "block k+1's current weights on block k's process at every step. "
            "Use 'man++' (eta'' follows block k+1's first unit one step "
            'late) or run MLAAN in one process.')
    if budget is not None:
        raise BlockParallelError(
            'local_cfg.parallel with memory_budget: the budget plans blocks '
            'for one process; give num_blocks (= the number of processes) '
            'or boundaries instead.')
    if eta_cfg is not None and eta_cfg.get('ema', True) and \
            not eta_cfg.get('ema_delay'):
        eta_cfg['ema_delay'] = 1
        print_log(
            "local learning: block-parallel: eta'' follows block k+1's "
            'first unit as it was 1 step ago (eta.ema_delay=1; a '
            'one-process run with eta=dict(ema_delay=1) trains the same '
            'weights).', logger='current')
    return parallel


def stage_of_rank(rank: int, num_blocks: int) -> int:
    """The block (0-based) rank ``rank`` trains (inverse of
    :func:`stage_rank`)."""
    return (rank - 1) % num_blocks


def check_world_size(plan: BlockPlan) -> None:
    world = get_world_size()
    if plan.num_blocks < 2:
        raise BlockParallelError(
            'local_cfg.parallel needs at least 2 blocks (num_blocks >= 2).')
    if world != plan.num_blocks:
        raise BlockParallelError(
            f'local_cfg.parallel: {plan.num_blocks} blocks need '
            f'{plan.num_blocks} processes, one per block, but the world size '
            f'is {world}: run `bash tools/dist_train.sh CONFIG '
            f'{plan.num_blocks}`, or set num_blocks={world}.')


def own_params(optimizer, plan: BlockPlan, aux: LocalAuxiliary,
               model: nn.Module, stage: int) -> None:
    """Keep only block ``stage``'s parameters in ``optimizer``'s groups
    (groups stay, possibly empty, so every rank keeps the config's groups)."""
    params = [p for g in optimizer.param_groups for p in g['params']]
    owned = {
        id(p)
        for p in block_param_groups(plan, aux, model, params)[stage]
    }
    for group in optimizer.param_groups:
        group['params'] = [p for p in group['params'] if id(p) in owned]


# ----------------------------------------------------------- transport
@dataclass(frozen=True)
class TensorMeta:
    """Shape and dtype of a tensor that is not sent (a placeholder)."""
    shape: tuple
    dtype: torch.dtype

    @classmethod
    def of(cls, t: torch.Tensor) -> 'TensorMeta':
        return cls(tuple(t.shape), t.dtype)


@dataclass(frozen=True)
class _Slot:
    """Where a sent tensor goes back into the skeleton: its bucket (one
    flat buffer per dtype) and offset there."""
    bucket: int
    offset: int
    meta: TensorMeta


@dataclass(frozen=True)
class _Element:
    """A data sample (MMEngine ``BaseDataElement``) in a skeleton: its
    class, meta information and data fields (tensors as slots)."""
    cls: type
    metainfo: dict
    data: dict


def _pack(obj, tensor: Callable):
    """``obj`` with ``tensor`` applied to every tensor in it, data samples
    taken apart (:class:`_Element`; pickling their tensors whole costs
    milliseconds a batch); tuples, lists and dicts rebuilt."""

    def visit(node):
        if isinstance(node, torch.Tensor):
            return tensor(node)
        if isinstance(node, BaseDataElement):
            return _Element(type(node), dict(node.metainfo_items()),
                            _pack(dict(node.items()), tensor))
        return NotImplemented

    return map_nested(obj, visit)


def _rebuild(obj, leaf: Callable):
    """``obj`` with ``leaf`` applied to every :class:`_Slot` and
    :class:`TensorMeta` in it and its data samples put back together
    (tuples, lists, dicts rebuilt)."""

    def visit(node):
        if isinstance(node, (_Slot, TensorMeta)):
            return leaf(node)
        if isinstance(node, _Element):
            return node.cls(metainfo=node.metainfo,
                            **_rebuild(node.data, leaf))
        return NotImplemented

    return map_nested(obj, visit)


class _BoundedSends:
    """``isend`` works of one channel, at most ``depth`` messages in flight
    (the oldest is waited for; its tensors are kept alive until then)."""

    def __init__(self, depth: int, clock: 'StageClock'):
        self.depth = depth
        self.clock = clock
        self._inflight: deque = deque()

    def _sent(self, works: list, tensors: list) -> None:
        self._inflight.append((works, tensors))
        while len(self._inflight) > self.depth:
            self._wait_oldest()

    def _wait_oldest(self) -> None:
        works, _ = self._inflight.popleft()
        with self.clock.span('send'):
            for work in works:
                work.wait()

    def flush(self) -> None:
        """Wait until every sent message has been received."""
        while self._inflight:
            self._wait_oldest()


FIT, NEW = 0, 1  # a message in the posted receives / in new ones


@dataclass(frozen=True)
class _Layout:
    """The receives a channel's receiver posts for the next message, known
    to both ends: the skeleton's bytes and the elements of each dtype's
    flat buffer. Capacities only grow (a smaller last batch fits)."""
    skeleton: int
    buckets: tuple  # ((dtype, elements), ...)

    def fits(self, skeleton: int, buckets: list) -> bool:
        return skeleton <= self.skeleton and len(buckets) == len(
            self.buckets) and all(d == d_ and n <= n_ for (d, n), (
                d_, n_) in zip(buckets, self.buckets))

    def empty(self, device) -> List[torch.Tensor]:
        return [torch.empty(self.skeleton, dtype=torch.uint8, device=device)
                ] + [torch.empty(n, dtype=d, device=device)
                     for d, n in self.buckets]

    @staticmethod
    def after(layout: Optional['_Layout'], skeleton: int,
              buckets: list) -> '_Layout':
        """The layout that holds ``layout`` and a message of ``skeleton``
        bytes (0: the last one's) and ``buckets``."""
        held = dict(layout.buckets) if layout else {}
        room = layout.skeleton if layout else 0
        if skeleton > room:
            room = -(-skeleton * 5 // 4 // 4096) * 4096  # 25% more, 4 KiB
        return _Layout(room, tuple((d, max(n, held.get(d, 0)))
                                   for d, n in buckets))


class P2PChannel(_BoundedSends):
    """Nested structures of tensors and plain values sent to / received
    from one peer with ``torch.distributed`` point-to-point.

    A message is a header (FIT or NEW, the skeleton's length: 0 for the
    previous message's skeleton, the usual case), its skeleton (pickled:
    plain values, :class:`TensorMeta`, the slots of the tensors) and one
    flat buffer per dtype of its tensors. The receiver posts the next
    message's receives as soon as a message is in (:class:`_Layout`:
    the last message's sizes), so it travels while the receiver trains; a
    message that does not fit them (NEW: the first, or a larger one) fills
    them with nothing and follows in receives of its own sizes. Sends are
    ``isend``; at most ``depth`` messages stay in flight (the oldest is
    waited for). ``clock`` records the time spent waiting for the peer and
    receiving.
    """

    def __init__(self, peer: int, tag: int, device: torch.device,
                 depth: int, clock: 'StageClock'):
        super().__init__(depth, clock)
        self.peer = peer
        self.tag = tag
        self.device = device
        self._last_sent = self._received = None  # the last skeletons
        self._layout: Optional[_Layout] = None  # what the receiver posts
        self._pending = None  # (works, header, buffers) posted ahead

    def send(self, obj) -> None:
        buckets: Dict[torch.dtype, List[torch.Tensor]] = {}
        sizes: Dict[torch.dtype, int] = {}

        def slot(t: torch.Tensor):
            group = buckets.setdefault(t.dtype, [])
            offset = sizes.get(t.dtype, 0)
            group.append(t.detach().reshape(-1))
            sizes[t.dtype] = offset + t.numel()
            return _Slot(list(buckets).index(t.dtype), offset,
                         TensorMeta.of(t))

        tree = _pack(obj, slot)
        shape = [(d, sizes[d]) for d in buckets]
        skeleton = pickle.dumps(dict(tree=tree, buckets=shape))
        fresh = skeleton != self._last_sent
        self._last_sent = skeleton
        n_skel = len(skeleton) if fresh else 0
        posted, filler = self._layout, []
        if posted is not None and posted.fits(n_skel, shape):
            kind, sizes_ = FIT, posted.buckets
            text = torch.zeros(posted.skeleton, dtype=torch.uint8,
                               device=self.device)
        else:  # the posted receives get nothing; then its own sizes
            kind, sizes_ = NEW, shape
            filler = posted.empty(self.device) if posted else []
            text = torch.empty(n_skel, dtype=torch.uint8, device=self.device)
            self._layout = _Layout.after(posted, n_skel, shape)
        if n_skel:
            text[:n_skel] = torch.frombuffer(
                bytearray(skeleton), dtype=torch.uint8).to(self.device)
        flats = [torch.empty(n, dtype=d, device=self.device)
                 for d, n in sizes_]
        for (_, n), group, flat in zip(shape, buckets.values(), flats):
            torch.cat(group, out=flat[:n])
        header = torch.tensor([kind, n_skel], dtype=torch.int64,
                              device=self.device)
        parts = [header] + filler + ([text] if text.numel() else []) + flats
        self._sent([dist.isend(t, self.peer, tag=self.tag) for t in parts],
                   parts)

    def _post(self) -> None:
        """Post the next message's receives (header, and what fits the
        layout)."""
        header = torch.empty(2, dtype=torch.int64, device=self.device)
        room = self._layout.empty(self.device) if self._layout else []
        works = [dist.irecv(t, self.peer, tag=self.tag)
                 for t in [header] + room]
        self._pending = (works, header, room)

    def recv(self, ahead: bool = False):
        """The next message; ``ahead``: another one follows (its receives
        are posted now)."""
        if self._pending is None:
            self._post()
        works, header, room = self._pending
        self._pending = None
        with self.clock.span('wait'):  # until the peer sends
            works[0].wait()
        with self.clock.span('recv'):
            for work in works[1:]:
                work.wait()
            kind, n_skel = header.tolist()
            if kind == NEW:
                room = [torch.empty(n_skel, dtype=torch.uint8,
                                    device=self.device)] if n_skel else []
                if n_skel:
                    dist.recv(room[0], self.peer, tag=self.tag)
            if n_skel:
                self._received = pickle.loads(
                    room[0][:n_skel].cpu().numpy().tobytes())
            message = self._received
            if kind == NEW:
                flat = [torch.empty(n, dtype=d, device=self.device)
                        for d, n in message['buckets']]
                for work in [dist.irecv(t, self.peer, tag=self.tag)
                             for t in flat]:
                    work.wait()
                self._layout = _Layout.after(self._layout, n_skel,
                                             message['buckets'])
            else:
                flat = room[1:]
        if ahead:
            self._post()

        def tensor(s):
            if not isinstance(s, _Slot):
                return s  # a placeholder's TensorMeta
            n = math.prod(s.meta.shape)
            return flat[s.bucket][s.offset:s.offset + n].view(s.meta.shape)

        return _rebuild(message['tree'], tensor)


class SourceStream(_BoundedSends):
    """A module's state sent after every step to one peer: a fixed layout
    (the peer's copy of the module has the same tensors), so one flat
    buffer per dtype goes out and the next state is received ahead
    (:meth:`prefetch`) while the receiver trains."""

    def __init__(self, peer: int, template: List[torch.Tensor],
                 device: torch.device, depth: int, clock: 'StageClock'):
        super().__init__(depth, clock)
        self.peer, self.device = peer, device
        self.layout = [(t.dtype, t.shape) for t in template]
        self.sizes: Dict[torch.dtype, int] = {}
        for t in template:
            self.sizes[t.dtype] = self.sizes.get(t.dtype, 0) + t.numel()
        self._pending = None

    def send(self, tensors: List[torch.Tensor]) -> None:
        flats = [
            torch.cat([t.reshape(-1) for t in tensors if t.dtype == dtype])
            for dtype in self.sizes
        ]
        self._sent([dist.isend(t, self.peer, tag=SOURCES) for t in flats],
                   flats)

    def prefetch(self) -> None:
        """Post the receive of the next state."""
        if self._pending is None:
            flats = [torch.empty(n, dtype=dtype, device=self.device)
                     for dtype, n in self.sizes.items()]
            self._pending = ([dist.irecv(t, self.peer, tag=SOURCES)
                              for t in flats], flats)

    def recv(self) -> List[torch.Tensor]:
        self.prefetch()
        works, flats = self._pending
        self._pending = None
        with self.clock.span('wait'):
            for work in works:
                work.wait()
        by_dtype = dict(zip(self.sizes, flats))
        offsets = dict.fromkeys(self.sizes, 0)
        found = []
        for dtype, shape in self.layout:
            n, at = math.prod(shape), offsets[dtype]
            found.append(by_dtype[dtype][at:at + n].view(shape))
            offsets[dtype] = at + n
        return found


class StageClock:
    """Spans of one rank's time when ``enabled`` (``parallel.timeline``):
    ``iter`` (a train step), ``wait`` (for the peer's next message),
    ``recv`` (receiving it), ``send`` (for a message in flight to be
    received). ``time.perf_counter`` is one clock for the processes of one
    machine."""

    def __init__(self, enabled: bool = False):
        self.enabled = enabled
        self.spans: List[tuple] = []

    @contextmanager
    def span(self, kind: str):
        if not self.enabled:
            yield
            return
        start = time.perf_counter()
        try:
            yield
        finally:
            self.spans.append((kind, start, time.perf_counter()))


# -------------------------------------------------------------- a stage
class BlockPipeline:
    """What one rank does as block ``stage`` of a block-parallel run.

    Args:
        plan (BlockPlan): The block plan (K blocks, K ranks).
        aux (LocalAuxiliary): The auxiliary parts (every rank builds all;
            block ``stage``'s are trained here).
        model (nn.Module): The unwrapped model.
        stage (int): The block this rank trains (0-based).
        depth (int): Messages in flight per channel.
        timeline (bool): Record this rank's :class:`StageClock`.
    """

    def __init__(self, plan: BlockPlan, aux: LocalAuxiliary,
                 model: nn.Module, stage: int, depth: int = 2,
                 timeline: bool = False):
        self.plan = plan
        self.aux = aux
        self.model = model
        self.stage = stage
        self.num = plan.num_blocks
        self.clock = StageClock(timeline)
        device = next(model.parameters()).device
        rank = lambda k: stage_rank(k, self.num)  # noqa: E731
        self.prev = None if stage == 0 else P2PChannel(
            rank(stage - 1), ACTIVATIONS, device, depth, self.clock)
        self.next = None if stage == self.num - 1 else P2PChannel(
            rank(stage + 1), ACTIVATIONS, device, depth, self.clock)
        # MAN: this block's eta'' follows block stage+1's first unit, whose
        # rank sends it after every step; this rank sends its own first
        # unit to the block before when that block's eta'' follows it.
        self.eta = self._delayed_eta(stage)
        self.source_in = None if self.eta is None else SourceStream(
            rank(stage + 1), module_state(plan.next_unit(stage).module),
            device, depth, self.clock)
        self.source_out = None
        if stage > 0 and self._delayed_eta(stage - 1) is not None:
            self.source_out = SourceStream(
                rank(stage - 1),
                module_state(plan.next_unit(stage - 1).module), device,
                depth, self.clock)
        if self.eta is not None:
            self.eta.delayed.fed = True
        # eta'' steps owed (stepped or skipped), applied when eta'' is
        # next used: its source then has a block's forward pass to arrive
        self._eta_owed: deque = deque()
        self.iters = 0  # steps this rank took
        self.max_iters: Optional[int] = None  # of the run (set by its hook)
        self.received = 0  # source states it received
        self._payload = None
        self._outputs: Dict[int, object] = {}
        self._batch = None  # the preprocessed batch (block 1 sends it on)
        # the stem: the backbone's top-level modules holding no unit that
        # run before its first unit (block 1's rank records their outputs'
        # shapes; the others return zeros of them instead of running it)
        units = {id(u.module) for u in plan.units}
        self._stem_candidates = [
            (name, child) for name, child in model.get_submodule(
                plan.backbone).named_children()
            if not any(id(m) in units for m in child.modules())
        ]
        # block 1's rank: its outputs' shapes, call by call; the others:
        # the calls so far
        self._stem: Dict[str, list] = {}
        self._in_units = False  # the first unit has been entered
        # freed while training (id: (tensor, shape)); None: all held
        self._released: Optional[Dict[int, tuple]] = None
        self._reported = False

    def _delayed_eta(self, k: int) -> Optional[MomentumAuxNet]:
        if k >= self.num - 1:  # the last block has no auxiliary net
            return None
        eta = self.aux.blocks[k].eta
        if isinstance(eta, MomentumAuxNet) and eta.delayed is not None:
            return eta
        return None

    @property
    def is_last(self) -> bool:
        return self.stage == self.num - 1

    # ------------------------------------------------------ the forward
    def arm(self, local_step: Callable, stack) -> list:
        """Hooks (returned) and shadowed forwards (entered on ``stack``)
        for one training forward pass of this block.

        ``local_step(k, args, kwargs)``: the wrapper's local step.
        """
        plan, s = self.plan, self.stage
        self.release_unused()
        self._payload, self._outputs = None, {}
        self._stem, self._in_units = {}, False
        handles = [plan.units[0].module.register_forward_pre_hook(
            self._enter_units)]
        stem = dict((id(m), name) for name, m in self._stem_candidates)
        if s > 0:
            first = plan.ends[s - 1] + 1
            stack.enter_context(shadowed_forwards(
                [u.module for u in plan.units[:first]],
                lambda module, forward: self._shadow(module)))
            stack.enter_context(shadowed_forwards(
                [m for _, m in self._stem_candidates],
                lambda module, forward: self._shadow_stem(
                    stem[id(module)], forward)))
            handles.append(plan.next_unit(s - 1).module.
                           register_forward_pre_hook(self._inject,
                                                     with_kwargs=True))
        else:
            handles += [
                m.register_forward_hook(self._make_stem_recorder(name))
                for name, m in self._stem_candidates
            ]
        if not self.is_last:
            for i, unit in enumerate(plan.units):
                if plan.block_of(i) == s:
                    handles.append(unit.module.register_forward_hook(
                        self._make_recorder(i)))
            handles.append(plan.next_unit(s).module.register_forward_pre_hook(
                self._make_boundary(local_step), with_kwargs=True))
        return handles

    def _received(self) -> dict:
        if self._payload is None:
            more = self.max_iters is not None and \
                self.iters + 1 < self.max_iters
            self._payload = self.prev.recv(ahead=more)
        return self._payload

    def _shadow(self, module: nn.Module):
        index = next(i for i, u in enumerate(self.plan.units)
                     if u.module is module)

        def forward(*args, **kwargs):
            out = self._received()['units'][index]
            return _rebuild(out, lambda m: torch.zeros(
                m.shape, dtype=m.dtype, device=self.prev.device))

        return forward

    def _shadow_stem(self, name: str, forward: Callable):
        """Before the first unit, a stem module's output only feeds it (a
        block starts where nothing else crosses), which this rank shadows:
        zeros of block 1's shapes stand in. Later calls run."""

        def shadow(*args, **kwargs):
            if self._in_units:
                return forward(*args, **kwargs)
            calls = self._stem.setdefault(name, [])
            calls.append(None)
            found = self._received()['stem'][name][len(calls) - 1]
            return _rebuild(found, lambda m: torch.zeros(
                m.shape, dtype=m.dtype, device=self.prev.device))

        return shadow

    def _make_stem_recorder(self, name: str):

        def record(module, args, output):
            if not self._in_units:
                self._stem.setdefault(name, []).append(
                    map_tensors(output, TensorMeta.of))

        return record

    def _enter_units(self, module, args):
        self._in_units = True

    def _inject(self, module, args, kwargs):
        payload = self._received()
        return payload['args'], payload['kwargs']

    def _make_recorder(self, index: int):
        returned = index in self.plan.output_units

        def record(module, args, output):
            self._outputs[index] = map_tensors(
                output, torch.Tensor.detach if returned else TensorMeta.of)

        return record

    def _make_boundary(self, local_step: Callable):

        def boundary(module, args, kwargs):
            s = self.stage
            self._catch_up_eta()
            terms = local_step(s, args, kwargs)
            upstream = self._received() if s > 0 else dict(
                units={}, losses=[], batch=self._batch, stem=self._stem)
            units = {**upstream['units'], **self._outputs}
            self.next.send(
                dict(args=map_tensors(args, torch.Tensor.detach),
                     kwargs=map_tensors(kwargs, torch.Tensor.detach),
                     units=units,
                     losses=upstream['losses'] + [(s, terms)],
                     batch=upstream['batch'], stem=upstream['stem']))
            raise StageDone

        return boundary

    def batch(self, preprocess: Callable, data: dict) -> dict:
        """The preprocessed batch this step trains on: block 1 preprocesses
        the loaded one (and sends it on with its output); every other block
        receives it (its own loader reads nothing:
        :class:`BlockParallelBatchSource`)."""
        if self.stage > 0:
            return self._received()['batch']
        self._batch = preprocess(data, True)
        return self._batch

    def forget_batch(self) -> list:
        """End of a forward pass; returns the local loss terms ``[(k,
        terms)]`` of the blocks before that came with it (the last block
        logs them)."""
        losses = [] if self._payload is None else self._payload['losses']
        self._payload, self._outputs, self._batch = None, {}, None
        return losses

    # ---------------------------------------------------------- a step
    def after_step(self, stepped: bool) -> None:
        """After this rank's optimizer step: send this block's first unit
        to the block before; owe eta'' its step toward the delayed source
        (:meth:`_catch_up_eta`)."""
        self.iters += 1
        if self.source_out is not None:
            self.source_out.send(
                module_state(self.plan.next_unit(self.stage - 1).module))
        if self.eta is not None:
            self._eta_owed.append(stepped)

    def _catch_up_eta(self) -> None:
        """Move eta'' toward its delayed source once per owed step, as one
        process does after each step. Done when eta'' is next used (or
        saved), so the next block's state has this block's forward pass to
        arrive instead of stalling the step: the same values."""
        while self._eta_owed:
            stepped = self._eta_owed.popleft()
            if not self.eta.delayed.states:
                self._receive_source()
            if stepped:
                self.eta.update(None)
            else:  # the source stream moves on either way
                self.eta.delayed.pop()

    def _receive_source(self) -> None:
        self.eta.delayed.push(self.source_in.recv())
        self.received += 1
        if self.received < self.iters:  # the peer sends it: ask ahead
            self.source_in.prefetch()

    def drain(self) -> None:
        """Receive the source states sent up to this rank's step (before
        saving: the checkpoint then holds what a resumed run needs)."""
        if self.eta is not None:
            self._catch_up_eta()
            while self.received < self.iters:
                self._receive_source()
        for channel in (self.next, self.source_out):
            if channel is not None:
                channel.flush()

    def resume_at(self, iters: int) -> None:
        """A resumed run starts after ``iters`` steps (all sources in)."""
        self.iters = self.received = iters

    # ------------------------------------------------- the whole model
    def unused_tensors(self) -> List[torch.Tensor]:
        """The model's tensors this rank never uses while it trains: the
        units of the other blocks (shadowed before this block, never reached
        after it) and, but on the last block's rank, what lies outside the
        backbone (neck, heads). Not the rest of the backbone (stem, the
        units' tails, output layers) or the data preprocessor."""
        plan, model = self.plan, self.model
        backbone = model.get_submodule(plan.backbone)
        in_units = {id(m) for u in plan.units for m in u.module.modules()}
        keep = {id(t) for m in backbone.modules() if id(m) not in in_units
                for t in module_tensors(m, recurse=False)}
        preprocessor = getattr(model, 'data_preprocessor', None)
        if isinstance(preprocessor, nn.Module):
            keep.update(id(t) for t in module_tensors(preprocessor))
        drop = [t for i, u in enumerate(plan.units)
                if plan.block_of(i) != self.stage
                for t in module_tensors(u.module)]
        if not self.is_last:
            inside = {id(t) for t in module_tensors(backbone)}
            drop += [t for t in module_tensors(model) if id(t) not in inside]
        own = {id(t) for i, u in enumerate(plan.units)
               if plan.block_of(i) == self.stage
               for t in module_tensors(u.module)}
        found = {id(t): t for t in drop if id(t) not in keep | own}
        return list(found.values())

    def release_unused(self) -> None:
        """Free :meth:`unused_tensors` (the other blocks' parameters and
        buffers) until :meth:`sync_model` gives them back."""
        if self._released is not None:
            return
        self._released = {}
        for t in self.unused_tensors():
            self._released[id(t)] = (t, t.shape)
            t.data = torch.empty(0, dtype=t.dtype, device=t.device)
        if not self._reported:
            self._reported = True
            held = sum(p.numel() for p in self.model.parameters())
            freed = sum(math.prod(shape) for t, shape in
                        self._released.values() if isinstance(
                            t, nn.Parameter))
            print_log(
                f'block-parallel: block {self.stage + 1}\'s process holds '
                f'{held} of the model\'s {held + freed} parameter elements '
                'while it trains (the other blocks\' units, and before the '
                'last block the neck and heads, are freed)',
                logger='current')

    def hold_all(self) -> None:
        """Storage again for what :meth:`release_unused` freed (its values
        come from the owners: :meth:`sync_model`)."""
        for t, shape in (self._released or {}).values():
            t.data = torch.empty(shape, dtype=t.dtype, device=t.device)
        self._released = None

    def sync_model(self) -> None:
        """Every rank gets every block's trained tensors from its owner."""
        self.drain()
        self.hold_all()
        owners = tensor_owners(self.plan, self.aux, self.model)
        tensors: List[List[torch.Tensor]] = [[] for _ in range(self.num)]
        for t in list(self.model.parameters()) + list(self.model.buffers()):
            tensors[owners.get(id(t), self.num - 1)].append(t.data)
        for k, group in enumerate(tensors):
            if group:
                broadcast_coalesced(group, src=stage_rank(k, self.num))

    def gather(self, obj) -> Optional[list]:
        """``obj`` of every rank in block order, on rank 0 (else None)."""
        found = [None] * self.num if get_rank() == 0 else None
        dist.gather_object(obj, found, dst=0)
        if found is None:
            return None
        return [found[stage_rank(k, self.num)] for k in range(self.num)]


# ------------------------------------------------------------ runner side
@MODEL_WRAPPERS.register_module()
class BlockParallelModel(nn.Module):
    """Model wrapper of a block-parallel run (set by mmman's tools when
    ``local_cfg.parallel`` is given): the train step of one block; the
    validation and test steps of the whole model."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module

    def train_step(self, data, optim_wrapper) -> dict:
        with optim_wrapper.pipeline.clock.span('iter'):
            return self._train_step(data, optim_wrapper)

    def _train_step(self, data, optim_wrapper) -> dict:
        pipeline = optim_wrapper.pipeline
        with optim_wrapper.optim_context(self.module):
            data = pipeline.batch(self.module.data_preprocessor, data)
            try:
                losses = self.module._run_forward(data, mode='loss')
            except StageDone:
                losses = None
        if losses is None:  # a block before the last: its loss is spent
            optim_wrapper.update_block()
            return {}
        parsed, log_vars = self.module.parse_losses(losses)
        optim_wrapper.update_params(parsed)
        return log_vars

    def val_step(self, data):
        return self.module.val_step(data)

    def test_step(self, data):
        return self.module.test_step(data)


def _unsplit(sampler) -> None:
    """Every rank reads every sample, in the order one process reads them."""
    sampler.rank, sampler.world_size = 0, 1


@DATA_SAMPLERS.register_module()
class BlockParallelSampler(DefaultSampler):
    """:class:`DefaultSampler` that gives every rank the same batches (each
    rank trains one block of the same batch)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        _unsplit(self)
        self.num_samples = self.total_size = len(self.dataset)


@DATA_SAMPLERS.register_module()
class BlockParallelInfiniteSampler(InfiniteSampler):
    """:class:`InfiniteSampler` that gives every rank the same batches."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        _unsplit(self)
        self.indices = self._indices_of_rank()


@DATASETS.register_module()
class BlockParallelBatchSource:
    """The train dataset of a process that trains a block after the first:
    as long as ``dataset`` (so its sampler and epochs match block 1's), but
    it loads nothing: the batch comes, preprocessed, with block 1's output.

    Args:
        dataset (dict): The config's train dataset (built for its length
            and meta information only).
    """

    def __init__(self, dataset: dict):
        self.dataset = DATASETS.build(dataset) if isinstance(
            dataset, dict) else dataset
        self.metainfo = getattr(self.dataset, 'metainfo', {})

    def full_init(self) -> None:
        if hasattr(self.dataset, 'full_init'):
            self.dataset.full_init()

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict:
        return dict(index=index)


UNSPLIT_SAMPLERS = {
    'DefaultSampler': 'BlockParallelSampler',
    'InfiniteSampler': 'BlockParallelInfiniteSampler',
}
