"""Runner hooks of local learning (added by mmman's config snippets)."""
import json
import os
import os.path as osp
from typing import Optional

import torch
from mmengine.hooks import CheckpointHook, Hook
from mmengine.utils import apply_to
from mmengine.registry import HOOKS

from mmman.local.unit_trace import first_tensor
from mmman.utils.checkpoint import (allow_mmengine_checkpoints,
                                    restore_checkpoint_loader)

from .optim_wrapper import LocalLearningMixin


def _local_wrapper(runner) -> Optional[LocalLearningMixin]:
    """The runner's local-learning wrapper, if it trains with one."""
    wrapper = runner.optim_wrapper
    if isinstance(wrapper, LocalLearningMixin) and wrapper.local_enabled:
        return wrapper
    return None


def start_local_training(optim_wrapper) -> None:
    """What :class:`LocalLearningHook` does when training starts, for code
    that trains without a Runner (benchmarks, demos): take the eta copies.
    Any other optim wrapper is left alone."""
    if isinstance(optim_wrapper, LocalLearningMixin):
        optim_wrapper.take_copies()


@HOOKS.register_module()
class LocalLearningHook(Hook):
    """Sets a run up for local learning: its checkpoints and its copies.

    - ``before_run``: this run's checkpoint loads (``load_from``,
      ``--resume``, testing) go through mmman's weights-only loader, which
      reads what MMEngine and mmman write on torch >= 2.6
      (:mod:`mmman.utils.checkpoint`); ``after_run`` puts the previous
      loader back. Importing mmman installs nothing.
    - ``before_train``: takes the MAN eta copies. It runs after
      ``init_weights`` (pretrained ``init_cfg``), ``load_from`` and
      ``--resume``, so the copies start from the weights the run really
      starts from; a resumed run keeps the checkpoint's copies (the optim
      wrapper checked that the checkpoint's block plan is this config's
      when it loaded them). Does nothing for ``method='e2e'``.
    """
    priority = 'VERY_HIGH'

    def __init__(self):
        self._previous_loader = None

    def before_run(self, runner) -> None:
        self._previous_loader = allow_mmengine_checkpoints()

    def after_run(self, runner) -> None:
        restore_checkpoint_loader(self._previous_loader)
        self._previous_loader = None

    def before_train(self, runner) -> None:
        start_local_training(runner.optim_wrapper)


@HOOKS.register_module()
class BlockParallelHook(Hook):
    """The whole-model moments of a block-parallel run (added by mmman's
    tools with ``local_cfg.parallel``).

    MMEngine saves checkpoints on rank 0 alone, so before a save may follow
    (a checkpoint iteration or epoch, validation: a best checkpoint) every
    rank gets every block's trained tensors (the checkpoint is the plain
    model) and rank 0 every block's optimizer and auxiliary state. Its
    priority puts it after the parameter schedulers' step (the saved
    learning rates are the next step's) and before the checkpoint hook.
    After training every rank holds the trained model.
    """
    priority = 80  # ParamSchedulerHook: LOW (70); CheckpointHook: 90

    def before_train(self, runner) -> None:
        if _pipeline(runner) is not None:  # messages to expect
            _pipeline(runner).max_iters = runner.max_iters

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        if _pipeline(runner) is not None and _checkpoint_due(runner):
            _gather_blocks(runner)

    def after_train_epoch(self, runner) -> None:
        if _pipeline(runner) is not None:
            _gather_blocks(runner)

    def before_val_epoch(self, runner) -> None:
        if _pipeline(runner) is not None:  # a best checkpoint may follow
            _gather_blocks(runner)

    def after_train(self, runner) -> None:
        pipeline = _pipeline(runner)
        if pipeline is None:
            return
        pipeline.sync_model()
        if pipeline.clock.enabled:  # parallel.timeline
            path = osp.join(runner.work_dir, 'timeline',
                            f'rank{runner.rank}.json')
            os.makedirs(osp.dirname(path), exist_ok=True)
            with open(path, 'w') as f:
                json.dump(dict(rank=runner.rank, block=pipeline.stage + 1,
                               spans=pipeline.clock.spans), f)
            runner.logger.info(f'block-parallel timeline: {path}')

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if _pipeline(runner) is None or 'optimizer' not in checkpoint:
            return
        at, state = runner.optim_wrapper.gathered
        if at != runner.iter:
            raise RuntimeError(
                'local learning: a block-parallel checkpoint saved at '
                f'iteration {runner.iter}, where the blocks\' states were '
                'not gathered (a CheckpointHook moment mmman does not '
                'foresee); saving rank 0\'s block alone would not resume.')
        checkpoint['optimizer'] = apply_to(state, lambda x: hasattr(x, 'cpu'),
                                           lambda x: x.cpu())


def _checkpoint_due(runner) -> bool:
    """Whether a CheckpointHook saves after this training iteration."""
    for hook in runner.hooks:
        if isinstance(hook, CheckpointHook) and not hook.by_epoch and (
                hook.every_n_train_iters(runner, hook.interval,
                                         hook.save_begin) or
            (hook.save_last and hook.is_last_train_iter(runner))):
            return True
    return False


def _gather_blocks(runner) -> None:
    """Every rank: sync the model; rank 0 keeps every block's state."""
    wrapper = runner.optim_wrapper
    if wrapper.gathered[0] == runner.iter:
        return
    wrapper.pipeline.sync_model()
    wrapper.gathered = (runner.iter, wrapper.gathered_state_dict())


def _pipeline(runner):
    wrapper = _local_wrapper(runner)
    return None if wrapper is None else wrapper.pipeline


@HOOKS.register_module()
class BlockCollapseHook(Hook):
    """Warns when a local block's output collapses to zeros.

    Every ``interval`` iterations it measures the share of non-zero
    activations in the output of each local block (blocks 1..K-1), logs it as
    ``local{k}_active`` and warns once per block when it falls below
    ``min_active``: the sign of dead features. Measured in docs/results.md:
    DGL's first two blocks under the full-scale dense detection objective
    kept 0.7% and 2.0% of their activations alive, healthy blocks 69-93%.

    Args:
        interval (int): Measure every ``interval`` training iterations.
        min_active (float): Warn below this share of non-zero activations.
    """
    priority = 'NORMAL'

    def __init__(self, interval: int = 50, min_active: float = 0.05):
        self.interval = interval
        self.min_active = min_active
        self._handles = []
        self._shares = {}
        self._warned = set()

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        wrapper = _local_wrapper(runner)
        if wrapper is None or not self.every_n_train_iters(
                runner, self.interval):
            return
        plan = wrapper.plan
        for k in range(plan.num_blocks - 1):
            if wrapper.pipeline is not None and k != wrapper.pipeline.stage:
                continue  # block-parallel: the blocks it trains here
            unit = plan.boundary_unit(k).module
            self._handles.append(
                unit.register_forward_hook(self._make_probe(k)))

    def _make_probe(self, k: int):

        def probe(module, args, output):
            with torch.no_grad():
                self._shares[k] = (first_tensor(output) !=
                                   0).float().mean().item()

        return probe

    def after_train_iter(self,
                         runner,
                         batch_idx,
                         data_batch=None,
                         outputs=None) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        wrapper = _local_wrapper(runner)
        for k, share in sorted(self._shares.items()):
            runner.message_hub.update_scalar(f'train/local{k + 1}_active',
                                             share)
            if share < self.min_active and k not in self._warned:
                self._warned.add(k)
                runner.logger.warning(
                    f'local learning: block {k + 1} (ending at '
                    f'{wrapper.plan.boundary_unit(k).name}) looks collapsed '
                    f'at iteration {runner.iter + 1}: only {share:.2%} of its '
                    'output activations are non-zero. Its local objective '
                    'may be too strong for it (lower the head\'s loss_weight '
                    'or the learning rate, or use MAN/MAN++).')
        self._shares.clear()
