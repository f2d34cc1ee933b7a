"""Memory-balanced block boundaries, cached on disk.

Balancing runs the model forward at two reduced scales to measure what each
unit saves; a cache in the work dir makes that a one-time cost per model and
image scale: a resumed or repeated run reads the boundaries back. The key
covers everything the boundaries depend on (the model's architecture and
which parameters train, the image scale, K, the number of eta branches,
the method and the checkpointed blocks),
so a changed model or scale is never served a stale plan.
"""
import hashlib
import json
import os
import os.path as osp
from typing import List, Optional, Sequence

import torch.nn as nn

CACHE_FILE = 'mmman_block_plans.json'


def plan_key(model: nn.Module,
             img_scale: Sequence[int],
             num_blocks: int,
             eta_branches: int,
             method: str = 'local',
             checkpointed: Sequence[int] = (),
             extra: Sequence = ()) -> str:
    """SHA-256 of the architecture, trainable flags, scale, K, branches,
    method, checkpointed blocks and ``extra`` (a memory budget's settings).
    """
    digest = hashlib.sha256()
    digest.update(repr(model).encode())
    for name, param in model.named_parameters():
        digest.update(f'{name}:{tuple(param.shape)}:'
                      f'{param.requires_grad};'.encode())
    key = [list(img_scale), num_blocks, eta_branches, method]
    if checkpointed:  # the keys of plans without stay as they were
        key.append(sorted(checkpointed))
    if extra:
        key.append(list(extra))
    digest.update(json.dumps(key).encode())
    return digest.hexdigest()


class BlockPlanCache:
    """Boundaries by :func:`plan_key`, in ``<cache_dir>/mmman_block_plans.json``.

    Args:
        cache_dir (str): Directory of the cache file (the work dir).
    """

    def __init__(self, cache_dir: str):
        self.path = osp.join(cache_dir, CACHE_FILE)

    def _read(self) -> dict:
        if not osp.isfile(self.path):
            return {}
        try:
            with open(self.path) as f:
                return json.load(f)
        except (OSError, ValueError):  # damaged: measure again, rewrite
            return {}

    def get(self, key: str) -> Optional[List[str]]:
        """The cached boundaries (unit names) or None."""
        entry = self.get_entry(key)
        return list(entry['boundaries']) if entry else None

    def get_entry(self, key: str) -> Optional[dict]:
        """Everything cached under ``key`` or None."""
        return self._read().get(key)

    def put(self, key: str, boundaries: Sequence[str], **info) -> None:
        """Store ``boundaries`` under ``key`` (atomic replace of the file)."""
        entries = self._read()
        entries[key] = dict(info, boundaries=list(boundaries))
        os.makedirs(osp.dirname(self.path) or '.', exist_ok=True)
        tmp = f'{self.path}.{os.getpid()}.tmp'
        with open(tmp, 'w') as f:
            json.dump(entries, f, indent=2)
        os.replace(tmp, self.path)
