"""OptimWrapper that trains the backbone block by block (local learning).

MMEngine's ``BaseModel.train_step`` runs the forward pass inside
``optim_wrapper.optim_context(model)`` and then calls ``update_params``. This
wrapper uses both moments, so any MMDet/MMSeg/MMPretrain model trains with
local learning without a line of model code changing:

* inside ``optim_context`` it arms forward hooks at the block boundaries (and
  removes them on exit: between steps the model carries no hook, so a deep
  copy of it, e.g. by MMEngine's ``EMAHook``, is the plain model). When block
  k+1's first unit is called, its pre-hook computes block k's local loss on
  what the unit receives (eta is called with the same arguments, e.g. Swin's
  ``hw_shape``), backpropagates it at once (freeing block k's activations)
  and hands the unit its inputs detached. Backbone outputs produced inside a
  finished block (FPN inputs, MMSeg ``auxiliary_head`` inputs) are detached;
* ``update_params`` backpropagates the model's own loss through the last
  block, neck and heads, clips each block's gradients on their own (when
  ``clip_grad`` is set), takes one optimizer step for everything and, if the
  step was taken (AMP skips steps on overflow), moves the MAN EMA copies
  toward the next layers.

Under DDP the forward pass runs in ``no_sync()`` (DDP's reducer would miss
the backward calls made during forward); the wrapper all-reduces the
gradients itself, coalesced, before the step, and broadcasts rank 0's buffers
(model and auxiliary networks) before each forward when the model's
``broadcast_buffers`` is set, as DDP would.

The eta copies are taken by :class:`~mmman.engine.LocalLearningHook` when
training starts, after pretrained weights, ``load_from`` and ``--resume``.
"""
from contextlib import ExitStack, contextmanager
from typing import List, Optional

import torch
import torch.nn as nn
from mmengine.dist import get_world_size
from mmengine.logging import print_log
from mmengine.optim import AmpOptimWrapper, OptimWrapper
from mmengine.registry import OPTIM_WRAPPERS

from mmman.local.auxiliary import LocalAuxiliary
from mmman.local.partition import BlockPlan
from mmman.local.unit_trace import flat_tensors, map_tensors
from mmman.utils.recompute import tail_modules

from .block_params import block_param_groups
from .ddp_sync import (all_reduce_grads, broadcast_coalesced,
                       report_unused_params)
from .local_losses import LocalLossLedger, NonFiniteLocalLossError, fmt_terms
from .resume_signature import (PlanMismatchError, check_resumable,
                               split_legacy_no_decay_group)
from .unit_checkpoint import checkpoint_blocks, checkpointed_units

HOOK_HINT = ("add custom_hooks=[dict(type='LocalLearningHook')] to the "
             "config (mmman's configs/_base_/mmman/*_local.py snippets do)")


def _detach(obj):
    """Detach every tensor in a (nested) tuple / list / dict."""
    return map_tensors(obj, torch.Tensor.detach)


class LocalLearningMixin:
    """Local-learning behaviour shared by the plain and the AMP wrapper.

    Args:
        model (nn.Module, optional): The unwrapped model.
        plan (BlockPlan, optional): Block boundaries; None trains end to end.
        aux (LocalAuxiliary, optional): eta and heads of blocks 1..K-1.
        signature (dict, optional): What must match to resume a checkpoint
            (method, eta branches, block ends); saved with the aux state.
        max_skipped_steps (int): Report a run of this many consecutive
            optimizer steps skipped by the AMP loss scaler.
        checkpoint: ``local_cfg.checkpoint``: None, ``'all'`` or 1-based
            blocks whose units recompute their activations in backward
            (:mod:`~mmman.engine.unit_checkpoint`).
        pipeline (BlockPipeline, optional): This process's block of a
            block-parallel run (:mod:`~mmman.engine.block_parallel`); its
            optimizer holds that block's parameters only.
    """

    def __init__(self,
                 *args,
                 model: Optional[nn.Module] = None,
                 plan: Optional[BlockPlan] = None,
                 aux: Optional[LocalAuxiliary] = None,
                 signature: Optional[dict] = None,
                 max_skipped_steps: int = 10,
                 checkpoint=None,
                 pipeline=None,
                 **kwargs):
        super().__init__(*args, **kwargs)
        if (plan is None) != (aux is None):
            raise ValueError('local learning needs both `plan` and `aux`.')
        self.model = model
        self.plan = plan
        self.aux = aux
        self.signature = signature
        self.max_skipped_steps = max_skipped_steps
        if checkpoint is not None and plan is None:
            raise ValueError('local_cfg.checkpoint needs local blocks (a '
                             "method other than 'e2e').")
        self.checkpoint_blocks = checkpoint_blocks(
            checkpoint, plan.num_blocks if plan is not None else None)
        self.pipeline = pipeline
        self.alone = False
        self.gathered = (None, None)  # (iteration, gathered_state_dict())
        if pipeline is not None:  # the other blocks do not run here
            self.checkpoint_blocks = tuple(
                k for k in self.checkpoint_blocks if k == pipeline.stage)
        self._inputs = None
        self._data_samples = None
        self._handles = []
        self._stepped = False
        self._skipped_run = 0
        self._losses = LocalLossLedger()
        self._detect_unused = False
        self._groups: Optional[List[list]] = None
        self._stepped_blocks = set()  # blocks whose local step ran
        self._copies_ready = False  # aux.initialized, once read True
        self.optimizer.register_step_post_hook(self._mark_stepped)

    @property
    def _synced(self) -> bool:
        """Whether the processes hold one model (not a wrapper one process
        builds alone, e.g. to measure a plan: ``alone = True``)."""
        return not self.alone and get_world_size() > 1

    @property
    def _data_parallel(self) -> bool:
        """Whether the processes train replicas (gradients all-reduced)."""
        return self._synced and self.pipeline is None

    @property
    def local_enabled(self) -> bool:
        return self.plan is not None and self.plan.num_blocks > 1

    @property
    def block_groups(self) -> List[list]:
        """The optimizer's parameters of each block (K lists, from the plan;
        see :func:`~mmman.engine.block_params.block_param_groups`)."""
        if self._groups is None:
            self._groups = block_param_groups(self.plan, self.aux, self.model,
                                              self._all_params())
        return self._groups

    # ------------------------------------------------------------ copies
    def take_copies(self) -> None:
        """Take eta' and eta'' from the (now loaded) next layers.

        Called by :class:`LocalLearningHook` at ``before_train``; does nothing
        when the copies were restored from a resumed checkpoint.
        """
        if not self.local_enabled:
            return
        if bool(self.aux.initialized):
            print_log('local learning: copies restored from the checkpoint',
                      logger='current')
            return
        self.aux.reset_copies()
        if self._synced:  # heads were initialised per rank
            broadcast_coalesced([  # eta'' sources follow the model
                t for t in self.aux.state_dict().values()
                if isinstance(t, torch.Tensor)
            ])
        print_log(
            'local learning: copies taken from the next layers\n' +
            self.plan.describe(),
            logger='current')

    # ---------------------------------------------------------------- hooks
    def _arm(self, stack: ExitStack) -> None:
        plan = self.plan
        self._stepped_blocks = set()
        self._handles.append(
            self.model.register_forward_pre_hook(
                self._capture_batch, with_kwargs=True))
        if self.pipeline is not None:
            self._handles += self.pipeline.arm(self._local_step, stack)
        else:
            for k in range(plan.num_blocks - 1):
                unit = plan.next_unit(k).module
                self._handles.append(
                    unit.register_forward_pre_hook(
                        self._make_boundary_hook(k), with_kwargs=True))
        for i in plan.finished_outputs():
            layer = plan.output_layer(i)
            if layer is not None:  # it learns; its input stays isolated
                self._handles.append(layer.register_forward_pre_hook(
                    lambda m, args, kwargs: (_detach(args), _detach(kwargs)),
                    with_kwargs=True))
        if plan.finished_outputs():
            backbone = self.model.get_submodule(plan.backbone)
            self._handles.append(
                backbone.register_forward_hook(self._detach_finished_outputs))

    def _disarm(self) -> None:
        self._inputs = self._data_samples = None
        if self.pipeline is not None:  # the blocks before: logged here
            for k, terms in self.pipeline.forget_batch():
                self._losses.add(k, terms)
        self.aux.forget_batch()  # nothing of the batch outlives the step
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _capture_batch(self, module, args, kwargs):
        self._inputs = kwargs.get('inputs', args[0] if args else None)
        self._data_samples = kwargs.get('data_samples',
                                        args[1] if len(args) > 1 else None)

    def _make_boundary_hook(self, k: int):
        """Forward pre-hook of block k+1's first unit: block k's local step
        on what that unit receives, which it then receives detached."""

        def hook(module, args, kwargs):
            if k in self._stepped_blocks:
                raise RuntimeError(
                    f'local learning: {self.plan.next_unit(k).name} ran twice '
                    'in one forward pass (e.g. DetectoRS\'s recursive '
                    'feature pyramid runs the backbone again); block '
                    f'{k + 1}\'s local loss needs it to run once per step.')
            self._stepped_blocks.add(k)
            detached = _detach(args), _detach(kwargs)  # new containers: eta
            self._local_step(k, args, kwargs)  # may fill them in place
            return detached

        return hook

    def _local_step(self, k: int, args: tuple, kwargs: dict) -> dict:
        """Local loss of block k, backpropagated now; returns its terms.

        ``args``/``kwargs``: the call of block k+1's first unit; its first
        tensor is block k's output, and eta is called like that unit. The
        loss terms are kept as tensors and checked at the step
        (:meth:`_check_local`): one device sync per step, not per term.
        """
        if self._data_samples is None:
            raise RuntimeError(
                'local learning: the model was called without data_samples; '
                'local losses need the targets of the batch.')
        feature = flat_tensors(
            (args, kwargs))[self.plan.next_unit(k).in_index]
        if not feature.requires_grad:
            raise RuntimeError(
                f'local learning: block {k + 1}\'s output reaches '
                f'{self.plan.next_unit(k).name} without an autograd graph '
                '(a backbone with its own backward, e.g. reversible layers, '
                'or a frozen block): there is no local loss to learn from.')
        losses = self.aux.loss(k, feature, self._data_samples, self._inputs,
                               args, kwargs)
        loss, log_vars = self.model.parse_losses(losses)
        terms = {n: v for n, v in log_vars.items() if n != 'loss'}
        self._losses.add(k, terms)
        self._local_backward(loss)
        return terms

    def _check_local(self) -> None:
        """Log the step's local losses; stop on a non-finite one, or on
        non-finite gradients of a local block (AMP's scaler checks its own)."""
        groups = None if hasattr(self, 'loss_scaler') else \
            self.block_groups[:-1]
        records, bad_loss, bad_grads = self._losses.read(groups)
        for k, terms in records:
            for name, value in terms.items():
                self.message_hub.update_scalar(f'train/local{k + 1}_{name}',
                                               value)
        if bad_loss is not None:
            self._on_nonfinite_local_loss(*bad_loss)
        elif bad_grads is not None:
            self._on_nonfinite_local_grads(
                bad_grads, self._losses.last.get(bad_grads, {}))

    def _on_nonfinite_local_loss(self, k: int, terms: dict) -> None:
        self._stop_nonfinite(k, 'the local loss', 'is', fmt_terms(terms))

    def _on_nonfinite_local_grads(self, k: int, terms: dict) -> None:
        self._stop_nonfinite(k, 'the gradients', 'are',
                             f'its local loss is {fmt_terms(terms)}')

    def _stop_nonfinite(self, k: int, what: str, verb: str,
                        detail: str) -> None:
        raise NonFiniteLocalLossError(
            f'local learning: {what} of block {k + 1} '
            f'({self.plan.boundary_unit(k).name}) {verb} not finite at '
            f'iteration {self._iteration()}: {detail}. Training stopped '
            'before the optimizer step, so no parameter changed. Lower the '
            'learning rate or the loss weight of that block\'s head, or '
            'check its inputs.')

    def _local_backward(self, loss: torch.Tensor) -> None:
        """Backward of a local loss, scaled like the model's own loss."""
        loss = self.scale_loss(loss)
        if hasattr(self, 'loss_scaler'):  # AMP
            loss = self.loss_scaler.scale(loss)
        loss.backward()

    def _detach_finished_outputs(self, module, args, output):
        if isinstance(output, torch.Tensor):  # one output
            return output.detach()
        outs = list(output)
        if len(outs) != len(self.plan.output_units):
            raise RuntimeError(
                f'local learning: the backbone returned {len(outs)} outputs '
                f'where the plan expects {len(self.plan.output_units)}: '
                f'{type(module).__name__} returns other outputs in other '
                'calls (DetectoRS\'s recursive feature pyramid calls it '
                'twice), which local learning does not support.')
        for i in self.plan.finished_outputs():
            if self.plan.output_layer(i) is None:
                outs[i] = _detach(outs[i])
        return type(output)(outs)

    def _iteration(self):
        it = self.message_hub.get_info('iter')
        return '?' if it is None else it + 1

    # ------------------------------------------------------ training step
    @contextmanager
    def optim_context(self, model: nn.Module):
        if not self.local_enabled:
            with super().optim_context(model), self._checkpointing(model):
                yield
            return
        self._prepare(model)
        with ExitStack() as stack:
            stack.enter_context(super().optim_context(model))
            if hasattr(model, 'no_sync'):
                stack.enter_context(model.no_sync())
            stack.callback(self._disarm)
            self._arm(stack)
            stack.enter_context(self._checkpointing(model))
            yield

    def _checkpointing(self, model: nn.Module):
        """Checkpoint the units of ``local_cfg.checkpoint``'s blocks, and
        the model's neck and decode head with the last block."""
        modules = [
            unit.module for k in self.checkpoint_blocks
            for unit in self.plan.block_units(k)
        ]
        if self.plan is not None and (self.plan.num_blocks -
                                      1) in self.checkpoint_blocks:
            modules += tail_modules(getattr(model, 'module', model))
        return checkpointed_units(modules)

    def _prepare(self, model: nn.Module) -> None:
        if not self._copies_ready:  # read once, not at every step
            self._copies_ready = bool(self.aux.initialized)
        if not self._copies_ready:
            raise RuntimeError(
                'local learning: the eta copies were never taken from the '
                f'next layers; {HOOK_HINT}. Without a Runner, call '
                '`optim_wrapper.take_copies()` before training.')
        self.aux.follow_modes()
        if getattr(model, 'detect_anomalous_params', False):
            # MMDDP would look only at the model loss's graph and report
            # blocks 1..K-1 as unused: the wrapper checks gradients instead.
            model.detect_anomalous_params = False
            self._detect_unused = True
            print_log(
                'local learning: detect_anomalous_params is checked by mmman '
                '(parameters without a gradient after every block\'s '
                'backward), not on the model loss\'s graph alone.',
                logger='current')
        if self._data_parallel and getattr(model, 'broadcast_buffers',
                                            False):
            # no_sync() also stops DDP's own buffer broadcast.
            broadcast_coalesced(
                list(self.model.buffers()) + list(self.aux.buffers()))

    def step(self, **kwargs) -> None:
        if not self.local_enabled:
            super().step(**kwargs)
            return
        if self._data_parallel:
            all_reduce_grads(self._all_params())
        self._check_local()
        if self._detect_unused:
            report_unused_params(
                list(self.model.named_parameters()) +
                [(f'mmman_aux.{n}', p)
                 for n, p in self.aux.named_parameters()])
        self._stepped = False
        self._take_step(**kwargs)
        if self.pipeline is not None:
            self.pipeline.after_step(self._stepped)
        elif self._stepped:
            self.aux.update_ema()
        if self._stepped:
            self._skipped_run = 0
        else:
            self._report_skipped_step()

    def update_block(self) -> None:
        """``update_params`` of a block-parallel rank before the last: its
        local loss was backpropagated in the forward pass; step."""
        self._inner_count += 1
        if self.should_update():
            self.step()
            self.zero_grad()

    def _take_step(self, **kwargs) -> None:
        """The host wrapper's step (clip, optimizer step; AMP may skip)."""
        super().step(**kwargs)

    def _mark_stepped(self, optimizer, args, kwargs) -> None:
        self._stepped = True

    def _report_skipped_step(self) -> None:
        """The loss scaler skipped the step: no EMA update; report runs."""
        self._skipped_run += 1
        self.message_hub.update_scalar('train/skipped_steps',
                                       self._skipped_run)
        if self._skipped_run % self.max_skipped_steps == 0:
            last = '; '.join(f'block {k + 1}: {fmt_terms(t)}'
                             for k, t in sorted(self._losses.last.items()))
            print_log(
                f'local learning: the AMP loss scaler skipped the last '
                f'{self._skipped_run} optimizer steps (non-finite local '
                f'losses or gradients) '
                f'up to iteration {self._iteration()}; no parameter or EMA '
                f'copy changed. Last local losses: {last}',
                logger='current',
                level=30)

    def _all_params(self) -> List[nn.Parameter]:
        return [
            p for group in self.optimizer.param_groups
            for p in group['params']
        ]

    # ------------------------------------------------- per-block clipping
    def _clip_grad(self) -> None:
        """Clip every block (its units and auxiliary nets) on its own.

        Local blocks solve separate problems: one global norm would let a
        large local loss shrink every other block's update. The last block
        (rest of the backbone, neck, heads) is logged as ``grad_norm``, block
        k < K as ``local{k}_grad_norm``.
        """
        if not self.local_enabled:
            super()._clip_grad()
            return
        groups = self.block_groups
        norms = {}
        for k, params in enumerate(groups):
            params = [p for p in params if p.requires_grad
                      and p.grad is not None]
            if not params:
                continue
            value = self.clip_func(params, **self.clip_grad_kwargs)
            if value is not None:
                norms[k] = torch.as_tensor(value).float().reshape(1)
        if not norms:
            return
        # read together: one host sync per step, not one per block
        values = torch.cat([v.to(next(iter(norms.values())).device)
                            for v in norms.values()]).tolist()
        for k, value in zip(norms, values):
            prefix = '' if k == len(groups) - 1 else f'local{k + 1}_'
            self.message_hub.update_scalar(
                f'train/{prefix}{self.grad_name}', value)

    # ------------------------------------------------------------ state
    def state_dict(self) -> dict:
        state = super().state_dict()
        if self.aux is not None:
            state = dict(
                state,
                mmman_local=self.aux.state_dict(),
                mmman_plan=self.signature)
        if self.pipeline is not None:
            state['mmman_iters'] = self.pipeline.iters
        return state

    def gathered_state_dict(self) -> Optional[dict]:
        """The optimizer part of a block-parallel checkpoint, on rank 0:
        every block's state (its optimizer, auxiliary parts, sources), in
        block order. A collective: every rank calls it."""
        self.pipeline.drain()
        stages = self.pipeline.gather(self.state_dict())
        if stages is None:
            return None
        return dict(mmman_stages=stages, mmman_plan=self.signature)

    def load_state_dict(self, state_dict: dict) -> None:
        state_dict = dict(state_dict)
        stages = state_dict.pop('mmman_stages', None)
        if (stages is None) != (self.pipeline is None):
            raise PlanMismatchError(
                'local learning: this checkpoint was trained '
                f'{"in one process" if stages is None else "block-parallel"}'
                ' and this config trains '
                f'{"block-parallel" if stages is None else "in one process"}'
                ': each block\'s optimizer state lives with its process. '
                'Resume with the same `local_cfg.parallel`, or start from '
                'its weights with `load_from`.')
        if stages is not None:
            state_dict = dict(stages[self.pipeline.stage])
            self.pipeline.resume_at(state_dict.pop('mmman_iters'))
        local = state_dict.pop('mmman_local', None)
        saved = state_dict.pop('mmman_plan', None)
        if local is not None:
            local = LocalAuxiliary.upgrade_keys(local)
        check_resumable(self.signature if self.aux is not None else None,
                        saved, local,
                        {k: v.shape for k, v in self.aux.state_dict().items()}
                        if self.aux else None)
        if self.aux is not None:
            self.aux.load_state_dict(local)
            state_dict = split_legacy_no_decay_group(
                state_dict, self.optimizer.param_groups,
                self.aux.legacy_params())
        super().load_state_dict(state_dict)


@OPTIM_WRAPPERS.register_module()
class LocalOptimWrapper(LocalLearningMixin, OptimWrapper):
    """:class:`OptimWrapper` with local learning (see module doc)."""


@OPTIM_WRAPPERS.register_module()
class LocalAmpOptimWrapper(LocalLearningMixin, AmpOptimWrapper):
    """:class:`AmpOptimWrapper` with local learning.

    Local losses are scaled by the same loss scaler as the model's loss. A
    non-finite local loss is an overflow, as AMP treats one: the step is
    skipped (no parameter and no EMA copy moves) and the scale backs off,
    even where the loss's gradients happen to be finite; runs of skipped
    steps are reported.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._overflowed = False

    def _on_nonfinite_local_loss(self, k: int, terms: dict) -> None:
        self._overflowed = True

    def _take_step(self, **kwargs) -> None:
        if not self._overflowed:
            super()._take_step(**kwargs)
            return
        self._overflowed = False
        scaler = self.loss_scaler
        new_scale = self._scale_update_param  # a static scale stays
        if new_scale is None:
            new_scale = scaler.get_scale() * scaler.get_backoff_factor()
        scaler.update(new_scale)
