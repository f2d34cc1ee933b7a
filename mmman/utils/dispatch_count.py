"""How many tensor ops a piece of code dispatches, and how many host syncs.

On a GPU every op is a kernel launch, and every read of a tensor's value
back to the host waits for the device: ``.item()``, ``int(t)``, ``bool(t)``
(``aten._local_scalar_dense``), ``nonzero``, whose output size is read
back (boolean-mask indexing calls it), and ``torch.equal``, which returns a
Python bool. A step of many small ops and syncs is bound by them, not by
its FLOPs. Counted on any device, so a CPU test can
guard a GPU cost.
"""
import traceback
from collections import Counter
from typing import Sequence

import torch
from torch.utils._python_dispatch import TorchDispatchMode

HOST_SYNCS = ('aten._local_scalar_dense', 'aten.nonzero', 'aten.equal')


class DispatchCounter(TorchDispatchMode):
    """Counts dispatched ops by name; with ``sync_sites`` also where each
    host sync came from (the innermost frames under ``packages``).

    Args:
        sync_sites (bool): Record a call site per host sync.
        packages (list[str]): Path parts that name the frames kept.
    """

    def __init__(self,
                 sync_sites: bool = False,
                 packages: Sequence[str] = ('mmman', 'mmdet', 'mmseg',
                                            'mmpretrain', 'mmengine')):
        super().__init__()
        self.ops = Counter()
        self.sites = Counter() if sync_sites else None
        self.packages = tuple(packages)

    @property
    def total(self) -> int:
        return sum(self.ops.values())

    @property
    def host_syncs(self) -> int:
        return sum(self.ops[name] for name in HOST_SYNCS)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = str(func.overloadpacket)
        self.ops[name] += 1
        if self.sites is not None and name in HOST_SYNCS:
            frames = [f for f in traceback.extract_stack()[:-1]
                      if any(p in f.filename for p in self.packages)]
            if frames:
                f = frames[-1]
                path = '/'.join(f.filename.split('/')[-3:])
                self.sites[f'{path}:{f.lineno} {f.name}'] += 1
        return func(*args, **(kwargs or {}))
