"""OptimWrapper that trains the backbone block by block (local learning).

MMEngine's ``BaseModel.train_step`` runs the forward pass inside
``optim_wrapper.optim_context(model)`` and then calls ``update_params``. This
wrapper uses both moments, so any MMDet/MMSeg/MMPretrain model trains with
local learning without a line of model code changing:

* inside ``optim_context`` it arms forward hooks at the block boundaries. At
  the end of block k < K the hook computes the local loss on the block output,
  backpropagates it at once (freeing block k's activations) and hands a
  detached output to block k+1. Backbone outputs produced inside a finished
  block (FPN inputs, MMSeg ``auxiliary_head`` inputs) are detached too;
* ``update_params`` backpropagates the model's own loss through the last
  block, neck and heads, then takes one optimizer step for everything and
  moves the MAN EMA copies toward the next layers.

Under DDP the forward pass runs in ``no_sync()`` (DDP's reducer would miss
the backward calls made during forward) and gradients of every parameter are
all-reduced, coalesced, before the step.
"""
from contextlib import ExitStack, contextmanager
from typing import Optional

import torch
import torch.nn as nn
from mmengine.dist import all_reduce_params, broadcast, get_world_size
from mmengine.logging import print_log
from mmengine.optim import AmpOptimWrapper, OptimWrapper
from mmengine.registry import OPTIM_WRAPPERS

from mmman.local.auxiliary import LocalAuxiliary
from mmman.local.partition import BlockPlan


def _detach(obj):
    """Detach every tensor in a (nested) tuple/list output."""
    if isinstance(obj, torch.Tensor):
        return obj.detach()
    if isinstance(obj, (list, tuple)):
        return type(obj)(_detach(o) for o in obj)
    return obj


class LocalLearningMixin:
    """Local-learning behaviour shared by the plain and the AMP wrapper.

    Args:
        model (nn.Module, optional): The unwrapped model.
        plan (BlockPlan, optional): Block boundaries; None trains end to end.
        aux (LocalAuxiliary, optional): eta and heads of blocks 1..K-1.
    """

    def __init__(self,
                 *args,
                 model: Optional[nn.Module] = None,
                 plan: Optional[BlockPlan] = None,
                 aux: Optional[LocalAuxiliary] = None,
                 **kwargs):
        super().__init__(*args, **kwargs)
        if (plan is None) != (aux is None):
            raise ValueError('local learning needs both `plan` and `aux`.')
        self.model = model
        self.plan = plan
        self.aux = aux
        self._armed = False
        self._inputs = None
        self._data_samples = None
        self._handles = []
        if self.local_enabled:
            self._register_hooks()

    @property
    def local_enabled(self) -> bool:
        return self.plan is not None and self.plan.num_blocks > 1

    # ---------------------------------------------------------------- hooks
    def _register_hooks(self) -> None:
        model, plan = self.model, self.plan
        self._handles.append(
            model.register_forward_pre_hook(
                self._capture_batch, with_kwargs=True))
        for k in range(plan.num_blocks - 1):
            unit = plan.boundary_unit(k).module
            self._handles.append(
                unit.register_forward_hook(self._make_boundary_hook(k)))
        if plan.finished_outputs():
            backbone = model.get_submodule(plan.backbone)
            self._handles.append(
                backbone.register_forward_hook(self._detach_finished_outputs))

    def remove_hooks(self) -> None:
        """Detach the wrapper from the model (the model trains E2E again)."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _capture_batch(self, module, args, kwargs):
        if self._armed:
            self._inputs = kwargs.get('inputs', args[0] if args else None)
            self._data_samples = kwargs.get(
                'data_samples', args[1] if len(args) > 1 else None)

    def _make_boundary_hook(self, k: int):

        def hook(module, args, output):
            if not self._armed:
                return None
            return self._local_step(k, output)

        return hook

    def _local_step(self, k: int, feature: torch.Tensor) -> torch.Tensor:
        """Local loss of block k, backpropagated now; detached output."""
        if self._data_samples is None:
            raise RuntimeError(
                'local learning: the model was called without data_samples; '
                'local losses need the targets of the batch.')
        losses = self.aux.loss(k, feature, self._data_samples, self._inputs)
        loss, log_vars = self.model.parse_losses(losses)
        self._local_backward(loss)
        for name, value in log_vars.items():
            if name != 'loss':  # the sum of the entries logged here
                self.message_hub.update_scalar(f'train/local{k + 1}_{name}',
                                               value.item())
        return feature.detach()

    def _local_backward(self, loss: torch.Tensor) -> None:
        """Backward of a local loss, scaled like the model's own loss."""
        loss = self.scale_loss(loss)
        if hasattr(self, 'loss_scaler'):  # AMP
            loss = self.loss_scaler.scale(loss)
        loss.backward()

    def _detach_finished_outputs(self, module, args, output):
        if not self._armed:
            return None
        outs = list(output)
        if len(outs) != len(self.plan.output_units):
            raise RuntimeError(
                f'local learning: backbone returned {len(outs)} outputs, the '
                f'plan expects {len(self.plan.output_units)}.')
        for i in self.plan.finished_outputs():
            outs[i] = _detach(outs[i])
        return type(output)(outs)

    # ------------------------------------------------------ training step
    @contextmanager
    def optim_context(self, model: nn.Module):
        if not self.local_enabled:
            with super().optim_context(model):
                yield
            return
        self._prepare()
        with ExitStack() as stack:
            stack.enter_context(super().optim_context(model))
            if hasattr(model, 'no_sync'):
                stack.enter_context(model.no_sync())
            self._armed = True
            try:
                yield
            finally:
                self._armed = False
                self._inputs = self._data_samples = None

    def _prepare(self) -> None:
        """First step: take the copies from the now-loaded next layers."""
        if not bool(self.aux.initialized):
            self.aux.reset_copies(self.plan)
            if get_world_size() > 1:
                for tensor in self.aux.state_dict().values():
                    broadcast(tensor, src=0)
            print_log(
                'local learning: copies taken from the next layers\n' +
                self.plan.describe(),
                logger='current')
        self.aux.follow_modes(self.plan)

    def step(self, **kwargs) -> None:
        if self.local_enabled and get_world_size() > 1:
            self._all_reduce_grads()
        super().step(**kwargs)
        if self.local_enabled:
            self.aux.update_ema(self.plan)

    def _all_reduce_grads(self) -> None:
        grads = []
        for group in self.optimizer.param_groups:
            for p in group['params']:
                if p.requires_grad:
                    if p.grad is None:  # keep the ranks' buckets aligned
                        p.grad = torch.zeros_like(p)
                    grads.append(p.grad)
        all_reduce_params(grads, coalesce=True, op='mean')

    # ------------------------------------------------------------ state
    def state_dict(self) -> dict:
        state = super().state_dict()
        if self.aux is not None:
            state = dict(state, mmman_local=self.aux.state_dict())
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        state_dict = dict(state_dict)
        local = state_dict.pop('mmman_local', None)
        if self.aux is not None:
            if local is None:
                print_log(
                    'local learning: the checkpoint holds no auxiliary '
                    'state; copies will be taken from the next layers.',
                    logger='current')
            else:
                self.aux.load_state_dict(local)
        super().load_state_dict(state_dict)


@OPTIM_WRAPPERS.register_module()
class LocalOptimWrapper(LocalLearningMixin, OptimWrapper):
    """:class:`OptimWrapper` with local learning (see module doc)."""


@OPTIM_WRAPPERS.register_module()
class LocalAmpOptimWrapper(LocalLearningMixin, AmpOptimWrapper):
    """:class:`AmpOptimWrapper` with local learning; local losses are scaled
    by the same loss scaler as the model's loss."""
