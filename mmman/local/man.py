"""Momentum Auxiliary Network: eta(x) = eta'(x) + eta''(x) (MAN).

eta' and eta'' are copies of the first layer of the next block. eta' is trained
by the local loss; eta'' has frozen parameters that follow the real next layer
by an exponential moving average after every optimizer step, yet the local
gradient flows *through* it into the current block. MAN++ as published
balances the branches with one learnable scalar per block,
eta(x) = s * eta'(x) + (2 - s) * eta''(x), s = 1 at start
(:class:`BranchBalance`); our first reading, a per-channel scale and bias on
the EMA branch (:class:`ChannelScaleBias`), stays as an option.
"""
import copy
from collections import deque
from typing import List, Optional, Union

import torch
import torch.nn as nn
from mmengine.model import BaseAveragedModel, ExponentialMovingAverage
from mmengine.registry import MODELS

from mmman.utils.recompute import checkpointed
from .unit_trace import flat_tensors, map_tensors


def detached_copy(module: nn.Module) -> nn.Module:
    """Deep copy of ``module`` without the forward hooks set on it."""
    clone = copy.deepcopy(module)
    for m in clone.modules():
        m._forward_hooks.clear()
        m._forward_pre_hooks.clear()
    return clone


def follow_mode(copy_: nn.Module, source: nn.Module) -> None:
    """Give every submodule of ``copy_`` the train/eval mode of its source.

    Keeps e.g. ``norm_eval`` BatchNorms of the source in eval mode in the copy.
    """
    for c, s in zip(copy_.modules(), source.modules()):
        c.training = s.training


def module_state(module: nn.Module) -> List[torch.Tensor]:
    """Detached clones of ``module``'s state tensors, in ``state_dict``
    order."""
    return [t.detach().clone() for t in module.state_dict().values()]


class DelayedSource(nn.Module):
    """The states a module had ``delay`` optimizer steps ago: what eta''
    follows when its source lives on another process (block-parallel
    training sends block k+1's first unit to block k after each step).

    Holds ``delay`` states: :meth:`reset` fills it with the start state,
    :meth:`push` adds the state after a step and :meth:`pop` gives the oldest,
    so after step t eta'' moves toward the source of step ``t - delay`` (the
    start state while ``t <= delay``). In one process the wrapper pushes the
    real next layer's state; under block parallelism the process that owns
    it sends it (:mod:`mmman.engine.block_parallel`), and ``fed`` is set.
    """

    def __init__(self, delay: int):
        super().__init__()
        if int(delay) != delay or delay < 1:
            raise ValueError(f'eta.ema_delay must be an integer >= 0, got '
                             f'{delay}.')
        self.delay = int(delay)
        self.states: deque = deque()
        self.fed = False

    def reset(self, module: nn.Module) -> None:
        state = module_state(module)
        self.states = deque(state for _ in range(self.delay))

    def push(self, state: List[torch.Tensor]) -> None:
        self.states.append(state)

    def pop(self) -> List[torch.Tensor]:
        return self.states.popleft()

    def get_extra_state(self) -> list:
        """The held states: saved with the auxiliary state, so a resumed
        run follows the same sources."""
        return list(self.states)

    def set_extra_state(self, state: list) -> None:
        self.states = deque(state)


@MODELS.register_module()
class LiveCopy(BaseAveragedModel):
    """Frozen copy re-synchronised with its source after every step.

    The "parameters without EMA" ablation (paper momentum m = 0), which
    :class:`ExponentialMovingAverage` does not accept.
    """

    def avg_func(self, averaged_param: torch.Tensor,
                 source_param: torch.Tensor, steps: int) -> None:
        averaged_param.copy_(source_param)


@MODELS.register_module()
class ChannelScaleBias(nn.Module):
    """MAN++ learnable scaling bias: ``x * gamma + beta`` per channel.

    Starts as the identity (gamma = 1, beta = 0). Channels are dim 1 of an
    ``(N, C, H, W)`` map and the last dim of ``(N, L, C)`` tokens.

    Args:
        num_channels (int): C.
        decay (bool): Apply the optimizer's weight decay to gamma and beta.
            Off by default: decay pulls gamma toward 0 (switching eta'' off),
            not toward its neutral 1 (docs/methods.md).
    """

    def __init__(self, num_channels: int, decay: bool = False):
        super().__init__()
        self.decay = decay
        self.scale = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4:
            return x * self.scale.view(1, -1, 1, 1) + self.bias.view(
                1, -1, 1, 1)
        return x * self.scale + self.bias


@MODELS.register_module()
class BranchBalance(nn.Module):
    """MAN++'s published balance: ``s * copy + (2 - s) * ema``.

    One learnable scalar ``s`` per block, initialised to 1 (both branches
    weighted equally, i.e. MAN's sum at the start).

    Args:
        init (float): Initial ``s``.
        decay (bool): Apply the optimizer's weight decay to ``s``. Off by
            default: decay pulls ``s`` toward 0, i.e. eta -> 2 eta'', not
            toward its neutral 1 (SGD lr 0.02, wd 1e-4 takes s from 1 to
            0.165 over 90k steps with no gradient; docs/methods.md). The
            published code decays it (``decay=True``).
    """

    def __init__(self, init: float = 1.0, decay: bool = False):
        super().__init__()
        self.decay = decay
        self.s = nn.Parameter(torch.tensor(float(init)))

    def forward(self, copy_out: torch.Tensor,
                ema_out: torch.Tensor) -> torch.Tensor:
        return self.s * copy_out + (2 - self.s) * ema_out


@MODELS.register_module()
class MomentumAuxNet(nn.Module):
    """eta of MAN / MAN++ and its ablations, for one local block.

    Args:
        next_layer (nn.Module): The first layer of the next block (copied; not
            kept as a submodule).
        num_channels (int): Output channels of ``next_layer``.
        learnable_copy (bool): Use eta', the copy trained by the local loss.
        ema (bool): Use eta'', the frozen moving-average copy.
        momentum (float): Paper convention: weight of the *old* EMA value
            (0.995 keeps 99.5%). 0 makes eta'' a live copy of the next layer
            (the "parameters without EMA" ablation).
        scale_bias (dict, optional): Learnable scaling bias on eta'',
            e.g. ``dict(type='ChannelScaleBias')`` (our first MAN++ reading).
        balance (dict, optional): Combines the two branches instead of a
            sum, e.g. ``dict(type='BranchBalance')`` (published MAN++).
        out_index (int): Which output tensor of ``next_layer`` is its
            feature (0 but for units returning several, e.g. TNT's).
        recompute (bool | str): Keep only each branch's input and output
            in forward and recompute its activations in the local backward,
            one branch at a time (non-reentrant checkpointing: same
            gradients, BatchNorm statistics and random draws). The
            auxiliary phase then holds one copy's activations instead of
            two, for one more forward of each copy. ``'ema'``: recompute
            eta'' only, for one forward less; autograd backpropagates eta'
            (run after it) first and frees its activations before eta'' is
            replayed, but they stay alive through the head's backward
            (docs/benchmarks.md: the same peak on Faster R-CNN, a higher
            one on DeepLabV3).
        clone_inputs (bool): Call each branch on copies of the input
            tensors, for a next layer that writes into its inputs (TNT's):
            neither the other branch nor the real layer then sees the write.
        ema_delay (int): eta'' follows the next layer as it was this many
            optimizer steps ago (:class:`DelayedSource`): 0 in one process;
            block-parallel training needs >= 1, and a one-process run with
            the same delay trains the same weights.
    """

    def __init__(self,
                 next_layer: nn.Module,
                 num_channels: int,
                 learnable_copy: bool = True,
                 ema: bool = True,
                 momentum: float = 0.995,
                 scale_bias: Optional[dict] = None,
                 balance: Optional[dict] = None,
                 out_index: int = 0,
                 recompute: Union[bool, str] = False,
                 clone_inputs: bool = False,
                 ema_delay: int = 0):
        super().__init__()
        self.out_index = out_index
        if recompute not in (True, False, 'ema'):
            raise ValueError(f"eta.recompute must be True, False or 'ema', "
                             f'got {recompute!r}.')
        self.recompute = recompute
        self.clone_inputs = clone_inputs
        if not (learnable_copy or ema):
            raise ValueError('MomentumAuxNet needs learnable_copy or ema.')
        if not 0.0 <= momentum < 1.0:
            raise ValueError(
                f'MAN momentum must be in [0, 1) (paper: 0.995), got '
                f'{momentum}.')
        if scale_bias is not None and not ema:
            raise ValueError('a scaling bias acts on the EMA branch: it '
                             'needs ema=True.')
        if balance is not None and not (learnable_copy and ema):
            raise ValueError('a branch balance weighs eta\' against eta\'\': '
                             'it needs learnable_copy=True and ema=True.')
        self.momentum = momentum
        self.copy = detached_copy(next_layer) if learnable_copy else None
        self.ema = None
        if ema:
            source = detached_copy(next_layer)
            # MMEngine's EMA momentum is the weight of the *new* value.
            self.ema = (
                LiveCopy(source) if momentum == 0.0 else
                ExponentialMovingAverage(source, momentum=1.0 - momentum))
        self.delayed = None
        if ema_delay and ema:
            self.delayed = DelayedSource(ema_delay)
            self._holder = [detached_copy(next_layer)]  # not a submodule
        self.scale_bias = None if scale_bias is None else MODELS.build(
            scale_bias, default_args=dict(num_channels=num_channels))
        self.balance = None if balance is None else MODELS.build(balance)

    def forward(self, x, *args, **kwargs) -> torch.Tensor:
        """Both branches called as the next layer is (``x`` and any further
        arguments it takes, e.g. Swin's ``hw_shape``); each branch's feature
        output (``out_index``) is used. eta' runs first, but eta'' with
        ``recompute='ema'`` (the order only changes how the input's
        gradient terms are summed)."""
        ema_first = self.recompute == 'ema'
        out = y = None
        if self.copy is not None and not ema_first:
            out = self._feature(self.copy, bool(self.recompute), x, *args,
                                **kwargs)
        if self.ema is not None:
            y = self._feature(self.ema, bool(self.recompute), x, *args,
                              **kwargs)
            if self.scale_bias is not None:
                y = self.scale_bias(y)
        if self.copy is not None and ema_first:
            out = self._feature(self.copy, y is None, x, *args, **kwargs)
        if y is None or out is None:
            return y if out is None else out
        return self.balance(out, y) if self.balance is not None else out + y

    def _feature(self, branch: nn.Module, recompute: bool, *args,
                 **kwargs) -> torch.Tensor:

        def call(*args, **kwargs):
            if self.clone_inputs:  # inside the checkpoint: recomputed too
                args, kwargs = map_tensors((args, kwargs), torch.clone)
            return branch(*args, **kwargs)

        run = checkpointed(branch, call) if recompute else call
        return flat_tensors(run(*args, **kwargs))[self.out_index]

    @torch.no_grad()
    def reset(self, next_layer: nn.Module) -> None:
        """Copy eta' and eta'' from the (pretrained) next layer."""
        if self.copy is not None:
            self.copy.load_state_dict(next_layer.state_dict())
        if self.ema is not None:
            self.ema.steps.zero_()
            self.ema.update_parameters(next_layer)  # steps == 0: plain copy
        if self.delayed is not None:
            self.delayed.reset(next_layer)

    @torch.no_grad()
    def update(self, next_layer: nn.Module) -> None:
        """EMA step of eta'' toward the next layer (after an optimizer step),
        or toward its state ``ema_delay`` steps ago."""
        if self.ema is None:
            return
        if self.delayed is None:
            self.ema.update_parameters(next_layer)
            return
        if not self.delayed.fed:
            self.delayed.push(module_state(next_layer))
        holder = self._holder[0].to(next(self.ema.parameters()).device)
        for t, value in zip(holder.state_dict().values(),
                            self.delayed.pop()):
            t.copy_(value)
        self.ema.update_parameters(holder)

    def follow(self, next_layer: nn.Module) -> None:
        """Match the train/eval mode of the next layer."""
        for branch in (self.copy, getattr(self.ema, 'module', None)):
            if branch is not None:
                follow_mode(branch, next_layer)
