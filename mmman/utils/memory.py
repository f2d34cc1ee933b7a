"""Measure the memory of one training iteration.

``SavedTensorsMeter`` counts the bytes of tensors autograd saves for backward,
each storage once, and tracks their peak while they are alive. It is
deterministic and device independent: the number local learning lowers.
``PeakMemory`` reads the process peak (CPU: VmHWM, reset through
/proc/self/clear_refs) or ``torch.cuda.max_memory_allocated`` (GPU).
"""
import resource
from contextlib import contextmanager
from typing import Dict, List, Optional

import torch

_ACTIVE: List['SavedTensorsMeter'] = []  # meters inside their context


class _Saved:
    """A saved tensor that tells the meter when autograd frees it.

    Holds a detached alias (same storage and version counter): holding the
    tensor itself would, for a saved *output*, close a reference cycle
    tensor -> grad_fn -> saved variable -> tensor, and graphs that are never
    backpropagated would then wait for the cyclic garbage collector.
    """
    __slots__ = ('meter', 'key', 'tensor', '__weakref__')

    def __init__(self, meter, key, tensor):
        self.meter, self.key, self.tensor = meter, key, tensor

    def __del__(self):
        self.meter._release(self.key)


class SavedTensorsMeter:
    """Peak bytes of activations saved for backward inside the context.

    Parameters (leaf tensors that require grad) and views of them (e.g. the
    transposed weight a Linear saves) are not activations and are not counted. Storages shared by several saved tensors count once.

    Example:
        >>> with SavedTensorsMeter() as meter:
        ...     loss = model(x).sum(); loss.backward()
        >>> meter.peak_bytes
    """

    def __init__(self):
        self.current_bytes = 0
        self.peak_bytes = 0
        self._live: Dict[tuple, list] = {}
        self._hooks = torch.autograd.graph.saved_tensors_hooks(
            self._pack, self._unpack)

    def _pack(self, tensor: torch.Tensor):
        base = tensor if tensor._base is None else tensor._base
        if base.is_leaf and base.requires_grad:  # a parameter or a view of it
            return tensor
        storage = tensor.untyped_storage()
        key = (tensor.device, storage.data_ptr())
        entry = self._live.get(key)
        if entry is None:
            self._live[key] = [storage.nbytes(), 1]
            self.current_bytes += storage.nbytes()
            self.peak_bytes = max(self.peak_bytes, self.current_bytes)
        else:
            entry[1] += 1
        return _Saved(self, key, tensor.detach())

    @staticmethod
    def _unpack(packed):
        return packed.tensor if isinstance(packed, _Saved) else packed

    def _release(self, key) -> None:
        entry = self._live.get(key)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] == 0:
            self.current_bytes -= entry[0]
            del self._live[key]

    def __enter__(self):
        self._hooks.__enter__()
        _ACTIVE.append(self)
        return self

    def __exit__(self, *exc):
        _ACTIVE.remove(self)
        self._hooks.__exit__(*exc)
        return False


class PhaseMeter(SavedTensorsMeter):
    """:class:`SavedTensorsMeter` that also records per named phase the peak
    of live saved bytes (``peaks``) and its peak growth since the phase was
    entered (``growth``). Phases start at ``'stem'``; :meth:`enter` moves on.
    """

    def __init__(self):
        super().__init__()
        self.phase, self._start = 'stem', 0
        self.peaks, self.growth = {}, {}

    def enter(self, phase) -> None:
        self.phase, self._start = phase, self.current_bytes

    def _pack(self, tensor: torch.Tensor):
        packed = super()._pack(tensor)
        now, phase = self.current_bytes, self.phase
        self.peaks[phase] = max(self.peaks.get(phase, 0), now)
        self.growth[phase] = max(self.growth.get(phase, 0), now - self._start)
        return packed


@contextmanager
def counted_recomputation():
    """Let the innermost active meter count what a checkpoint recomputes.

    Non-reentrant ``torch.utils.checkpoint`` saves its inputs where the meter
    sees them, but recomputes the activations in backward under saved-tensor
    hooks of its own, which hide them from the meter. Entered as the
    recomputation context (checkpoint's ``context_fn``), this chains onto
    those hooks and counts every recomputed tensor until the recomputation
    ends. They are freed one by one in the backward that follows, in which
    nothing new is saved, so the peak is exact. Without an active meter it
    does nothing.
    """
    meter = _ACTIVE[-1] if _ACTIVE else None
    top = getattr(torch._C._autograd, '_top_saved_tensors_default_hooks',
                  None)
    hooks = top(False) if meter is not None and top is not None else None
    if hooks is None or hooks[0] == meter._pack:  # not in a recomputation
        yield
        return
    pack, unpack = hooks
    held = []

    def counting_pack(tensor):
        held.append(meter._pack(tensor))
        return pack(tensor)

    try:
        with torch.autograd.graph.saved_tensors_hooks(counting_pack, unpack):
            yield
    finally:
        held.clear()


class PeakMemory:
    """Peak memory of the process (CPU) or of the CUDA allocator (GPU).

    Args:
        device (torch.device | str, optional): 'cuda[:i]' measures
            ``torch.cuda.max_memory_allocated``; otherwise the peak resident
            set size of this process.
    """

    def __init__(self, device: Optional[torch.device] = None):
        self.device = torch.device(device or 'cpu')
        self.peak_bytes = 0

    def __enter__(self):
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            _reset_cpu_peak()
        return self

    def __exit__(self, *exc):
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)
            self.peak_bytes = torch.cuda.max_memory_allocated(self.device)
        else:
            self.peak_bytes = _cpu_peak()
        return False


def _reset_cpu_peak() -> None:
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')  # resets VmHWM to the current RSS (Linux)
    except OSError:
        pass


def _status_bytes(field: str) -> int:
    """A ``kB`` field of /proc/self/status (Linux) in bytes, 0 if absent."""
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith(field + ':'):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def current_rss_bytes() -> int:
    """Resident set size of this process now (Linux; 0 elsewhere)."""
    return _status_bytes('VmRSS')


def _cpu_peak() -> int:
    return _status_bytes('VmHWM') or (
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)


def measure_train_step(model, data, optim_wrapper,
                       device: Optional[torch.device] = None) -> dict:
    """Run one ``model.train_step`` and measure it.

    Returns:
        dict: ``peak_saved_bytes``, ``peak_memory_bytes`` and ``log_vars``.
    """
    with PeakMemory(device) as peak, SavedTensorsMeter() as saved:
        log_vars = model.train_step(data, optim_wrapper)
    return dict(
        peak_saved_bytes=saved.peak_bytes,
        peak_memory_bytes=peak.peak_bytes,
        log_vars=log_vars)


__all__ = [
    'SavedTensorsMeter', 'PhaseMeter', 'PeakMemory', 'current_rss_bytes',
    'counted_recomputation', 'measure_train_step'
]
