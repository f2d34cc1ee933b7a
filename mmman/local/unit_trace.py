"""Find the units of any backbone from one traced forward pass.

The backbone runs once on a small random image with autograd on and forward
hooks on every submodule. Every module call is recorded with its parent call
and the autograd nodes of its input and output tensors. Then:

1. **Flatten.** The backbone's own calls are expanded, recursively, into
   their sub-calls when these form a *chain* (each sub-call's inputs come only
   from the previous one's outputs, the first from the call's inputs, and the
   call's outputs only from the last one's): ``nn.Sequential`` stages, Swin's
   block sequences, ConvNeXt's stages. A call whose sub-calls do not chain
   (a residual block, an attention block) or are all plain layers (``Conv2d``,
   ``LayerNorm``, activations) stays whole.
2. **Cut.** A composite call ``j`` of the flat list can start a block when
   nothing computed before it is used after it except through its own inputs
   (the backbone's outputs aside: those of finished blocks are detached).
   A U-Net skip or an HRNet branch that passes a point forbids a cut there.
   The calls before the first cut are the stem; the calls between two cuts
   (plain layers, transitions, output norms) belong to the unit before them.

The units are the calls that can start a block; :class:`UnitCall` records
what each received (extra arguments such as Swin's ``hw_shape`` included),
so whatever copies a unit (MAN's eta) can call it the same way.
"""
import weakref
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn


TRACE_BATCH = 2  # tells the batch dim apart from a patch count


def batch_major(tensors: Sequence[torch.Tensor]) -> int:
    """Index of the first tensor with the trace batch as dim 0 (else 0)."""
    return next((i for i, t in enumerate(tensors)
                 if t.dim() and t.shape[0] == TRACE_BATCH), 0)


class TraceError(ValueError):
    """The backbone's structure cannot be cut into local blocks."""


@dataclass(frozen=True)
class UnitCall:
    """What a traced unit received and returned (batch of one image).

    Args:
        name (str): Module path inside the backbone.
        in_shape (tuple): Shape of its first input tensor.
        out_shape (tuple): Shape of its first output tensor.
        extra_inputs (bool): It took more than one input tensor or non-tensor
            arguments (e.g. ``hw_shape``).
        tail (tuple[str]): Paths of the modules with parameters that run
            after it and before the next unit (they belong to its block).
        in_index, out_index (int): Which of its input / output tensors is
            the feature map (the first one with the batch as dim 0; TNT's
            first input holds the pixel tokens of every patch).
        out_layers (tuple): ``(output index, path)`` of the layers after it
            whose output only feeds that backbone output (Swin's per-stage
            norms): not in ``tail``; they learn from the model's loss.
        mutates_inputs (bool): It writes into a tensor it received (TNT's
            layers add to their patch tokens in place).
    """
    name: str
    in_shape: Tuple[int, ...]
    out_shape: Tuple[int, ...]
    extra_inputs: bool
    tail: Tuple[str, ...] = ()
    in_index: int = 0
    out_index: int = 0
    out_layers: Tuple[Tuple[int, str], ...] = ()
    mutates_inputs: bool = False


@dataclass
class _Call:
    index: int
    name: str
    module: nn.Module
    parent: Optional[int]
    args: tuple = ()
    kwargs: Optional[dict] = None
    in_nodes: tuple = ()
    out_nodes: tuple = ()
    out_tensors: tuple = ()
    children: Optional[list] = None
    in_versions: tuple = ()
    mutates_inputs: bool = False


def flat_tensors(obj) -> List[torch.Tensor]:
    """The tensors of a (nested) tuple / list / dict, in order."""
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, (list, tuple)):
        return [t for o in obj for t in flat_tensors(o)]
    if isinstance(obj, dict):
        return [t for o in obj.values() for t in flat_tensors(o)]
    return []


def _node(t: torch.Tensor):
    return t.grad_fn


class _Recorder:
    """Forward hooks that record every module call of a backbone."""

    def __init__(self, backbone: nn.Module):
        self.calls: List[_Call] = []
        self.stack: List[int] = []
        self.handles = []
        for name, module in backbone.named_modules():
            if module is backbone:
                continue
            self.handles.append(
                module.register_forward_pre_hook(
                    self._pre(name), with_kwargs=True))
            self.handles.append(
                module.register_forward_hook(self._post, with_kwargs=True))

    def _pre(self, name):

        def hook(module, args, kwargs):
            inputs = flat_tensors((args, kwargs))
            call = _Call(
                len(self.calls), name, module,
                self.stack[-1] if self.stack else None, args, kwargs,
                tuple(_node(t) for t in inputs),
                in_versions=tuple(t._version for t in inputs))
            self.calls.append(call)
            self.stack.append(call.index)

        return hook

    def _post(self, module, args, kwargs, output):
        call = self.calls[self.stack.pop()]
        call.mutates_inputs = call.in_versions != tuple(
            t._version for t in flat_tensors((args, kwargs)))
        tensors = tuple(flat_tensors(output))
        call.out_tensors = tensors
        call.out_nodes = tuple(_node(t) for t in tensors)

    def remove(self):
        for h in self.handles:
            h.remove()


def _sources(nodes, stops: Dict[object, int], limit: int = 200000) -> set:
    """Indices of the calls (``stops``: node -> call) whose outputs the
    autograd ``nodes`` come from: the walk back stops at the first call
    output on each path."""
    found, seen, todo = set(), set(), [n for n in nodes if n is not None]
    while todo:
        node = todo.pop()
        if node in seen:
            continue
        seen.add(node)
        if node in stops:
            found.add(stops[node])
            continue
        if len(seen) > limit:
            raise TraceError('the traced graph is too large to analyse.')
        for nxt, _ in getattr(node, 'next_functions', ()):
            if nxt is not None:
                todo.append(nxt)
    return found


def _is_plain(module: nn.Module) -> bool:
    """A plain layer: no submodules (Conv2d, LayerNorm, GELU, Dropout)."""
    return next(module.children(), None) is None


class _Trace:
    """One traced forward pass and the analysis of its calls."""

    def __init__(self, backbone: nn.Module, x: torch.Tensor):
        rec = _Recorder(backbone)
        try:
            source = x.requires_grad_()
            x = source * 1.0  # a non-leaf: its node stands for the input
            self.input_node = x.grad_fn
            self.output = backbone(x)
        finally:
            rec.remove()
        self.calls = rec.calls
        for call in self.calls:
            call.children = []
        top = []
        for call in self.calls:
            (top if call.parent is None else self.calls[
                call.parent].children).append(call.index)
        self.top = top

    def chains(self, call: _Call) -> bool:
        """Sub-calls of ``call`` form a chain covering it."""
        subs = [self.calls[i] for i in call.children]
        if len(subs) < 2 or all(_is_plain(s.module) for s in subs):
            return False
        items = sum(s.name.rsplit('.', 1)[-1].isdigit() for s in subs)
        if not (isinstance(call.module, nn.Sequential) or items >= 2):
            return False  # a block's own layers (conv, SE, ...): one unit
        modules = [s.module for s in subs]
        if len({id(m) for m in modules}) != len(modules):
            return False  # a layer called twice (shared activation)
        stops = {n: -1 for n in call.in_nodes if n is not None}
        prev = -1
        for sub in subs:
            if _sources(sub.in_nodes, stops) != {prev}:
                return False
            prev = sub.index
            for n in sub.out_nodes:
                if n is not None:
                    stops[n] = prev
        # its outputs come from the sub-calls (one may be an earlier one's,
        # e.g. Swin's stage returns its blocks' output beside the
        # downsampled one), never straight from its input
        found = _sources(call.out_nodes, stops)
        return prev in found and -1 not in found

    def flat(self) -> List[_Call]:
        """The backbone's calls, chains expanded (step 1)."""
        out = []

        def visit(i):
            call = self.calls[i]
            if self.chains(call):
                for j in call.children:
                    visit(j)
            else:
                out.append(call)

        for i in self.top:
            visit(i)
        return out


def _trace_inputs(backbone: nn.Module):
    """Random images to try: the usual 3 channels, else what the first conv
    or the backbone says (YOLOX's Focus stem takes 3, its conv 12)."""
    first = next((m for m in backbone.modules()
                  if isinstance(m, (nn.Conv2d, nn.Linear))), None)
    channels = [3] + [
        c for c in (getattr(first, 'in_channels', None),
                    getattr(backbone, 'in_channels', None))
        if isinstance(c, int) and c != 3
    ]
    param = next(backbone.parameters(), None)
    device = param.device if param is not None else 'cpu'
    g = torch.Generator().manual_seed(0)
    for size in _img_sizes(backbone):
        for c in dict.fromkeys(channels):
            yield f'{c}x{size}x{size}', torch.randn(
                TRACE_BATCH, c, size, size, generator=g).to(device)


def _img_sizes(backbone: nn.Module) -> List[int]:
    sizes = []
    for attr in ('img_size', 'pretrain_img_size'):
        value = getattr(backbone, attr, None)
        if isinstance(value, (tuple, list)) and value:
            value = value[0]
        if isinstance(value, int) and 32 <= value <= 512:
            sizes.append(value)
    # ImageNet's sizes, then the small fixed input of MNIST's LeNet-5
    return sizes + [s for s in (224, 256, 128, 32) if s not in sizes]


def _run_safely(backbone: nn.Module, run):
    """``run(x)`` on random images of the sizes the backbone may need, in its
    current (training) mode, since some backbones take other paths in eval
    (DDRNet's extra output); buffers (BN statistics, and which buffers exist
    and persist) and the RNG are left as they were."""
    buffers = [(b, b.clone()) for b in backbone.buffers()]
    # which buffers each module has, and which persist: some re-register
    # theirs in forward for a new input size (SwinV2's coordinate tables)
    registered = [(m, dict(m._buffers), set(m._non_persistent_buffers_set))
                  for m in backbone.modules()]
    rng = torch.get_rng_state()
    errors = []
    try:
        for shape, x in _trace_inputs(backbone):
            try:
                return run(x)
            except Exception as e:  # try the next input, report all
                errors.append(f'{shape}: {type(e).__name__}: {e}')
    finally:
        for m, found, transient in registered:
            m._buffers.clear()
            m._buffers.update(found)
            m._non_persistent_buffers_set.clear()
            m._non_persistent_buffers_set.update(transient)
        with torch.no_grad():
            for b, value in buffers:
                b.copy_(value)
        torch.set_rng_state(rng)
    raise TraceError(
        'it does not run on a random image, which finding its units needs ('
        + '; '.join(errors)[:600] + ').')


def _run_trace(backbone: nn.Module) -> _Trace:
    """Trace without touching weights, buffers or the RNG."""

    def run(x):
        with torch.enable_grad():
            return _Trace(backbone, x)

    return _run_safely(backbone, run)


def unit_shapes(backbone: nn.Module, modules: Sequence[nn.Module]) -> list:
    """``(in_shape, out_shape)`` of the first tensor each module receives and
    returns in one forward pass (one image); ``(None, None)`` for all when the
    backbone does not run on a random image."""
    key = tuple(id(m) for m in modules)
    cached = _SHAPES.get(backbone)
    if cached is not None and cached[0] == key:
        return cached[1]
    found = {}

    def hook(module, args, kwargs, output):
        ins, outs = flat_tensors((args, kwargs)), flat_tensors(output)
        if ins and outs:
            found.setdefault(id(module), (
                tuple(ins[batch_major(ins)].shape),
                tuple(outs[batch_major(outs)].shape)))

    handles = [
        m.register_forward_hook(hook, with_kwargs=True) for m in modules
    ]
    try:
        with torch.no_grad():
            _run_safely(backbone, backbone)
    except TraceError:
        pass
    finally:
        for h in handles:
            h.remove()
    shapes = [found.get(id(m), (None, None)) for m in modules]
    _SHAPES[backbone] = (key, shapes)
    return shapes


def _stops(trace: _Trace, flat: List[_Call]) -> dict:
    """Autograd node -> position in ``flat`` of the call that made it (-1:
    the input)."""
    stops = {trace.input_node: -1}
    for pos, call in enumerate(flat):
        for n in call.out_nodes:
            if n is not None:
                stops[n] = pos
    return stops


def _cuts(trace: _Trace, flat: List[_Call], stops: dict,
          sources: List[set]) -> List[int]:
    """Positions in ``flat`` of the composite calls a block may start at
    (``sources``: the calls each call's inputs come from)."""
    # earliest source each later call reaches back to
    reach = [min(found, default=pos) for pos, found in enumerate(sources)]
    # a backbone output made of several calls' outputs (DDRNet's x_s + x_c)
    # must not straddle a cut: a finished block's part would take the
    # model's gradient
    spans = [(min(found), max(found)) for found in (
        _sources([_node(t) for t in flat_tensors(out)], stops)
        for out in _outputs(trace.output)) if found]
    cuts = []
    for j, call in enumerate(flat):
        if _is_plain(call.module) or not call.in_nodes:
            continue
        if any(flat[i].module is call.module for i in range(len(flat))
               if i != j):
            continue  # called more than once: no unit
        if all(reach[m] >= j for m in range(j + 1, len(flat))) and not any(
                low < j <= high for low, high in spans):
            cuts.append(j)
    return cuts


def _outputs(output) -> list:
    """A backbone's outputs as a list (one tensor: a list of one)."""
    if isinstance(output, (tuple, list)):
        return list(output)
    return [output]


def _extra_inputs(call: _Call) -> bool:
    tensors = flat_tensors((call.args, call.kwargs))
    others = [a for a in call.args if not isinstance(a, torch.Tensor)]
    return len(tensors) > 1 or bool(others) or bool(call.kwargs)


def trace_units(
        backbone: nn.Module) -> Tuple[List[UnitCall], List[int], List[str]]:
    """Units of ``backbone`` from one traced forward pass.

    Returns:
        tuple: ``(units, output_units, stem)``: the units in forward order,
        for each backbone output the index of the unit that produces it, and
        the paths of the stem's modules with parameters.

    Raises:
        TraceError: if no cut is possible (say why).
    """
    trace = _run_trace(backbone)
    flat = trace.flat()
    stops = _stops(trace, flat)
    sources = [_sources(c.in_nodes, stops) for c in flat]
    cuts = _cuts(trace, flat, stops, sources)
    if len(cuts) < 2:
        raise TraceError(
            f'its forward pass has {len(cuts)} point(s) where a local block '
            'can start; two are needed (a point is excluded when a skip '
            'connection or a parallel branch crosses it, as in U-Net or '
            'two-path networks such as BiSeNet, or when only plain layers '
            'run there).')
    # output layers: a layer with parameters whose output only feeds one
    # backbone output (Swin's / ConvNeXt's per-stage norms); the model's loss
    # trains it, on its input detached, when that output is a finished
    # block's
    out_layers = {}
    for i, out in enumerate(_outputs(trace.output)):
        found = _sources([_node(t) for t in flat_tensors(out)], stops)
        pos = next(iter(found)) if len(found) == 1 else -1
        if (pos >= 0 and pos not in cuts
                and any(True for _ in flat[pos].module.parameters())
                and not any(pos in src for src in sources)
                and sum(f.module is flat[pos].module for f in flat) == 1):
            out_layers[pos] = i
    units = []
    for i, j in enumerate(cuts):
        call = flat[j]
        end = cuts[i + 1] if i + 1 < len(cuts) else len(flat)
        tail = tuple(
            c.name for pos, c in enumerate(flat[j + 1:end], j + 1)
            if any(True for _ in c.module.parameters())
            and pos not in out_layers)
        layers = tuple((out_layers[pos], flat[pos].name)
                       for pos in range(j + 1, end) if pos in out_layers)
        ins, outs = flat_tensors((call.args, call.kwargs)), call.out_tensors
        i, o = batch_major(ins), batch_major(outs)
        units.append(
            UnitCall(call.name, tuple(ins[i].shape),
                     tuple(outs[o].shape) if outs else (),
                     _extra_inputs(call), tail, i, o, layers,
                     call.mutates_inputs))
    stem = tuple(
        c.name for c in flat[:cuts[0]]
        if any(True for _ in c.module.parameters()))
    output_units = []
    for out in _outputs(trace.output):
        pos = max(
            _sources([_node(t) for t in flat_tensors(out)], stops),
            default=-1)
        unit = sum(j <= pos for j in cuts) - 1
        output_units.append(max(unit, 0))
    return units, output_units, list(stem)


_CACHE: 'weakref.WeakKeyDictionary' = weakref.WeakKeyDictionary()
_SHAPES: 'weakref.WeakKeyDictionary' = weakref.WeakKeyDictionary()


def cached_trace_units(backbone: nn.Module):
    """:func:`trace_units`, once per backbone module."""
    if backbone not in _CACHE:
        try:
            _CACHE[backbone] = trace_units(backbone)
        except TraceError as e:
            _CACHE[backbone] = e
    found = _CACHE[backbone]
    if isinstance(found, TraceError):
        raise found
    return found


def map_nested(obj, visit):
    """``obj`` rebuilt with new tuples / lists / dicts (namedtuples and
    ``torch.Size`` kept), ``visit(node)`` replacing every node it returns
    something other than ``NotImplemented`` for (it may recurse itself)."""
    found = visit(obj)
    if found is not NotImplemented:
        return found
    if isinstance(obj, (list, tuple)):
        items = [map_nested(o, visit) for o in obj]
        if isinstance(obj, list):
            return items
        if hasattr(obj, '_fields'):  # a namedtuple
            return type(obj)(*items)
        return type(obj)(items)  # tuple, torch.Size
    if isinstance(obj, dict):
        return {k: map_nested(v, visit) for k, v in obj.items()}
    return obj


def map_tensors(obj, fn=None):
    """``obj`` rebuilt with new tuples / lists / dicts and ``fn`` applied to
    every tensor (None: the same tensors). A unit that fills its input list
    in place (HRNet's modules do) cannot then change what another call
    sees."""

    def visit(node):
        if not isinstance(node, torch.Tensor):
            return NotImplemented
        return node if fn is None else fn(node)

    return map_nested(obj, visit)


def first_tensor(obj) -> torch.Tensor:
    """The first tensor of a unit's (nested) output."""
    tensors = flat_tensors(obj)
    if not tensors:
        raise TypeError(f'no tensor in {type(obj).__name__}.')
    return tensors[0]


def shapes_channels(shape: Sequence[int]) -> Tuple[int, bool]:
    """``(channels, tokens)`` of a traced shape: (N, C, H, W) maps, or
    tokens: (N, L, C), (N, C) pooled and (N, ..., C) patch groups (HiViT),
    which :func:`as_head_input` makes (N, L, C)."""
    if len(shape) == 4:
        return shape[1], False
    return shape[-1], True


def as_head_input(x: torch.Tensor) -> torch.Tensor:
    """A feature as auxiliary heads take it: (N, C, H, W) or (N, L, C)."""
    if x.dim() == 2:
        return x[:, None]
    if x.dim() > 4:
        return x.flatten(1, -2)
    return x
