"""The local losses of a step: logged and checked with one device sync.

Each local block's loss terms are kept as tensors while the forward pass
runs; at the optimizer step they are read together with every local block's
gradient norm (one ``.tolist()``, not one ``.item()`` per term), logged, and
checked for NaN/inf.
"""
from typing import Dict, List, Optional, Sequence, Tuple

import torch


class NonFiniteLocalLossError(FloatingPointError):
    """A local loss or its gradients became NaN or infinite (training stops
    before the optimizer step)."""


def fmt_terms(terms: Dict[str, float]) -> str:
    return ', '.join(f'{n}={v:.4g}' for n, v in terms.items())


def _finite(value: float) -> bool:
    return value - value == 0.0  # False for NaN and +-inf


class LocalLossLedger:
    """Local loss terms of the blocks since the last optimizer step."""

    def __init__(self):
        self._pending: List[Tuple[int, Dict[str, torch.Tensor]]] = []
        self.last: Dict[int, Dict[str, float]] = {}

    def add(self, k: int, terms: Dict[str, torch.Tensor]) -> None:
        """Block ``k``'s loss terms (detached, not read yet)."""
        self._pending.append(
            (k, {n: v.detach()
                 for n, v in terms.items()}))

    def read(self, grad_groups: Optional[Sequence[list]] = None):
        """Read the pending terms (and the gradient norm of each parameter
        list in ``grad_groups``) with one sync.

        Returns:
            tuple: ``(records, bad_loss, bad_grads)``: ``[(k, {term:
            float})]`` in order, the first ``(k, terms)`` with a non-finite
            term (or None), the index of the first group with non-finite
            gradients (or None).
        """
        pending, self._pending = self._pending, []
        if not pending:
            return [], None, None
        values = [v.float().reshape(1) for _, t in pending for v in t.values()]
        device = values[0].device
        norms = []
        for params in grad_groups or []:
            grads = [p.grad for p in params if p.grad is not None]
            norms.append(
                torch.stack(torch._foreach_norm(grads)).sum().float().reshape(
                    1).to(device) if grads else values[0].new_zeros(1))
        read = torch.cat(values + norms).tolist()
        records, bad_loss, pos = [], None, 0
        for k, terms in pending:
            floats = dict(zip(terms, read[pos:pos + len(terms)]))
            pos += len(terms)
            records.append((k, floats))
            self.last[k] = floats
            if bad_loss is None and not all(map(_finite, floats.values())):
                bad_loss = (k, floats)
        bad_grads = next(
            (i for i, norm in enumerate(read[pos:]) if not _finite(norm)),
            None)
        return records, bad_loss, bad_grads
