"""Builds the local-learning optim wrapper: block plan, auxiliary nets, params.

Config (everything lives in ``optim_wrapper``)::

    optim_wrapper = dict(
        type='LocalOptimWrapper',
        constructor='LocalOptimWrapperConstructor',
        optimizer=dict(type='SGD', lr=0.02, momentum=0.9),
        local_cfg=dict(
            method='man++',        # enhancement: 'e2e' | 'local' ('dgl') |
                                   # 'man' | 'man++' | 'mlaan' | 'mlaan+man'
            objective=None,        # base objective: 'dgl' | 'infopro' |
                                   # 'predsim' (replaces aux_head) | None
            num_blocks=4,          # or boundaries=['layer2.3', ...]
            balance=None,          # dict(img_scale=(800, 1333)) or True
                                   # (the train pipeline's size): split K
                                   # blocks by estimated activation memory;
                                   # cache_dir: reuse the plan (train.py
                                   # sets the work dir)
            momentum=0.995,        # MAN EMA, paper convention
            eta=None,              # ablations, e.g. dict(learnable_copy=False)
            mlaan=None,            # MLAAN: dict(wx=0.001, wy=0.999, ...)
            aux_head=None,         # None: the task's dense objective
                                   # (det: DenseDetAuxHead, seg:
                                   # DecodeAuxHead, cls: ImageClassAuxHead),
                                   # or a head config, or one per block
            checkpoint=None,       # 'all' or [1, 3]: these blocks' units
                                   # recompute their activations in backward
            parallel=None,         # dict(type='blocks'): block k on its own
                                   # process (tools/dist_train.sh CONFIG K);
                                   # balance='time': blocks sized by
                                   # measured compute
            backbone='backbone'))
"""
import copy
import functools
import logging
from typing import Optional

import torch.nn as nn
from mmengine.dist import get_rank
from mmengine.logging import print_log
from mmengine.optim import DefaultOptimWrapperConstructor, OptimWrapper
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS, OPTIM_WRAPPERS

from mmman.local.auxiliary import LocalAuxiliary, per_block
from mmman.local.budget import resolve_budget_cfg
from mmman.local.methods import resolve_eta_cfg, resolve_mlaan_cfg
from mmman.local.objectives import objective_heads
from mmman.local.partition import PartitionError
from mmman.local.planning import plan_blocks
from mmman.tasks import (TaskTargets, default_aux_head, infer_num_classes,
                         synthetic_batch)

from .block_parallel import (BlockPipeline, check_world_size, own_params,
                             resolve_parallel_cfg, stage_of_rank)
from .budget_planner import plan_for_budget
from .time_balance import measure_loading, plan_for_time
from .optim_wrapper import LocalLearningMixin
from .resume_signature import plan_signature
from .unit_checkpoint import checkpoint_blocks

# The paramwise_cfg rules of MMEngine's DefaultOptimWrapperConstructor.
PARAMWISE_KEYS = frozenset(
    ('custom_keys', 'bias_lr_mult', 'bias_decay_mult', 'norm_decay_mult',
     'dwconv_decay_mult', 'flat_decay_mult', 'dcn_offset_lr_mult',
     'bypass_duplicate'))
LOCAL_CFG_KEYS = ('method', 'objective', 'num_blocks', 'boundaries',
                  'balance', 'momentum', 'eta', 'mlaan', 'aux_head',
                  'checkpoint', 'backbone', 'memory_budget', 'parallel')
DEFAULT_LOCAL_CFG = dict(
    method='e2e',
    objective=None,
    mlaan=None,
    num_blocks=None,
    boundaries=None,
    balance=None,
    momentum=0.995,
    eta=None,
    aux_head=None,
    checkpoint=None,
    backbone='backbone',
    memory_budget=None,
    parallel=None)
# What a memory budget chooses itself.
BUDGET_CHOOSES = ('num_blocks', 'boundaries', 'balance', 'checkpoint')


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class LocalOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """Optim wrapper constructor for local learning.

    Plans the blocks, builds the auxiliary networks (before the optimizer, so
    their parameters get param groups of their own: ``paramwise_cfg`` applies
    to them under the prefix ``mmman_aux``) and hands both to the wrapper.
    With ``method='e2e'`` the result trains exactly like MMEngine's
    ``OptimWrapper``.
    """

    def __init__(self, optim_wrapper_cfg: dict,
                 paramwise_cfg: Optional[dict] = None):
        optim_wrapper_cfg = copy.deepcopy(dict(optim_wrapper_cfg))
        self._own_cfg = (copy.deepcopy(optim_wrapper_cfg),
                         copy.deepcopy(paramwise_cfg))
        local_cfg = dict(optim_wrapper_cfg.pop('local_cfg', None) or {})
        if 'recon_head' in local_cfg:
            raise ValueError(
                'local_cfg: `recon_head` (ReconstructionAuxHead) was removed: '
                'it cost 10 mIoU in the only setting measured (docs/results.md'
                '). InfoPro\'s reconstruction objective is '
                "objective='infopro'.")
        unknown = set(local_cfg) - set(LOCAL_CFG_KEYS)
        if unknown:
            raise ValueError(f'local_cfg: unknown keys {sorted(unknown)}; '
                             f'allowed are {list(LOCAL_CFG_KEYS)}.')
        self.local_cfg = dict(DEFAULT_LOCAL_CFG, **local_cfg)
        optim_wrapper_cfg.setdefault('type', 'LocalOptimWrapper')
        super().__init__(optim_wrapper_cfg, paramwise_cfg)
        unknown = set(self.paramwise_cfg) - PARAMWISE_KEYS
        if unknown:  # the one-field swap keeps the host's paramwise_cfg
            print_log(
                f'local learning: paramwise_cfg keys {sorted(unknown)} '
                'belong to another optimizer constructor (e.g. MMDet\'s '
                'layer-wise lr decay: decay_rate / decay_type / num_layers)'
                '; LocalOptimWrapperConstructor takes its place and applies '
                'only MMEngine\'s DefaultOptimWrapperConstructor rules, so '
                'they are NOT applied.',
                logger='current', level=logging.WARNING)
        wrapper_type = self.optim_wrapper_cfg['type']
        if isinstance(wrapper_type, str):
            wrapper_type = OPTIM_WRAPPERS.get(wrapper_type)
        if not (isinstance(wrapper_type, type)
                and issubclass(wrapper_type, LocalLearningMixin)):
            raise TypeError(
                'LocalOptimWrapperConstructor builds LocalOptimWrapper or '
                f'LocalAmpOptimWrapper, not {self.optim_wrapper_cfg["type"]}.')
        # Fail on a bad method or checkpoint before anything is built.
        checkpoint_blocks(self.local_cfg['checkpoint'])
        if (self.local_cfg['method'] == 'e2e'
                and self.local_cfg['checkpoint'] is not None):
            raise ValueError(
                "local_cfg.checkpoint checkpoints local blocks; method='e2e' "
                "has none (use the backbone's with_cp, or num_blocks=1 with "
                'a local method for the same checkpointing end to end).')
        self.eta_cfg = resolve_eta_cfg(self.local_cfg['method'],
                                       self.local_cfg['eta'],
                                       self.local_cfg['momentum'])
        self.mlaan_cfg = resolve_mlaan_cfg(self.local_cfg['method'],
                                           self.local_cfg['mlaan'],
                                           self.local_cfg['momentum'],
                                           self.eta_cfg)
        self.budget = resolve_budget_cfg(self.local_cfg['memory_budget'])
        if self.budget is not None:
            self._check_budget_cfg()
        self.parallel = resolve_parallel_cfg(self.local_cfg['parallel'],
                                             self.local_cfg['method'],
                                             self.mlaan_cfg, self.budget,
                                             self.eta_cfg)

    def _check_budget_cfg(self) -> None:
        cfg = self.local_cfg
        if cfg['method'] == 'e2e':
            raise ValueError(
                "local_cfg.memory_budget plans local blocks; method='e2e' "
                "has none: choose a local method such as 'man++'.")
        if self.mlaan_cfg is not None:
            raise ValueError(
                'local_cfg.memory_budget does not support MLAAN (its '
                'cascade costs memory the planner does not measure).')
        given = {k: cfg[k] for k in BUDGET_CHOOSES
                 if cfg[k] not in (None, False)}
        if given:  # e.g. inherited from a MAN++ config: one field swaps
            print_log(
                f'local learning: memory_budget chooses the blocks and '
                f'their checkpointing; {given} replaced.', logger='current',
                level=logging.WARNING)
            self.local_cfg.update({k: DEFAULT_LOCAL_CFG[k] for k in given})

    def _budget_plan(self, module: nn.Module) -> tuple:
        """local_cfg with the blocks and checkpointing the budget picks,
        and the plan (with its predicted peak)."""
        budget = self.budget
        if budget.get('img_scale') is None:
            raise PartitionError(
                'local learning: memory_budget needs the training image '
                "size; mmman's tools/train.py takes it from the train "
                'pipeline, which fixes none here. Give memory_budget=dict('
                "size='4GiB', img_scale=(H, W)).")
        own = self._own_cfg[0]
        found = plan_for_budget(
            module, budget['size'], tuple(budget['img_scale']),
            self._sub_wrapper_builder(memory_budget=None),
            lambda size: synthetic_batch(module, 2, size),
            cache_dir=budget.get('cache_dir'),
            cache_info=[self.local_cfg['method'],
                        repr(self.local_cfg['objective']),
                        repr(self.local_cfg['aux_head']),
                        repr(self.eta_cfg), repr(own.get('optimizer'))])
        cfg = dict(self.local_cfg, memory_budget=None)
        if found['boundaries']:
            cfg['boundaries'] = list(found['boundaries'])
        else:
            cfg['num_blocks'] = 1
        cfg['checkpoint'] = list(found['checkpoint']) or None
        return cfg, found

    def _sub_wrapper_builder(self, **local_cfg):
        """``(model, num_blocks, boundaries=None) -> optim wrapper`` of this
        config in one process, ``local_cfg`` overridden (copies taken): what
        the budget and time planners train to measure."""
        own, paramwise = self._own_cfg

        def build_wrapper(model: nn.Module, num_blocks=None,
                          boundaries=None):
            cfg = dict(copy.deepcopy(own), local_cfg=dict(
                self.local_cfg, **local_cfg, num_blocks=num_blocks,
                boundaries=boundaries))
            wrapper = LocalOptimWrapperConstructor(
                cfg, copy.deepcopy(paramwise))(model)
            wrapper.alone = True  # measured on one process
            wrapper.take_copies()
            return wrapper

        return build_wrapper

    def _time_plan(self, module: nn.Module) -> dict:
        """local_cfg with the boundaries of the time-balanced split."""
        cfg, parallel = self.local_cfg, self.parallel
        if cfg['num_blocks'] is None or cfg['boundaries'] is not None or \
                cfg['balance'] not in (None, False):
            raise PartitionError(
                "local_cfg.parallel.balance='time' places the boundaries of "
                'num_blocks blocks itself: give num_blocks, without '
                '`boundaries` or `balance`.')
        if parallel.get('img_scale') is None:
            raise PartitionError(
                "local_cfg.parallel.balance='time' needs the training image "
                "size; mmman's tools/train.py takes it from the train "
                'pipeline, which fixes none here. Give parallel=dict('
                "type='blocks', balance='time', img_scale=(H, W)).")
        names = plan_for_time(
            module, cfg['num_blocks'],
            self._sub_wrapper_builder(parallel=None),
            lambda n, size: synthetic_batch(module, n, size),
            tuple(parallel['img_scale']), parallel.get('batch_size', 2),
            cache_dir=parallel.get('cache_dir'),
            cache_info=[cfg['method'], repr(cfg['objective']),
                        repr(cfg['aux_head']), repr(self.eta_cfg)],
            load_fn=functools.partial(
                measure_loading, parallel['loader'],
                parallel.get('batch_size', 2)) if parallel.get('loader')
            else None)
        return dict(cfg, num_blocks=None, boundaries=names)

    def __call__(self, model: nn.Module) -> OptimWrapper:
        module = model.module if hasattr(model, 'module') else model
        cfg = self.local_cfg
        if cfg['method'] == 'e2e':
            return super().__call__(model)
        memory_plan = None
        if self.budget is not None:
            cfg, memory_plan = self._budget_plan(module)
        if (self.parallel or {}).get('balance') == 'time':
            cfg = self._time_plan(module)
        plan = plan_blocks(
            module,
            cfg['method'],
            cfg['num_blocks'],
            cfg['boundaries'],
            cfg['balance'],
            eta_cfg=self.eta_cfg,
            mlaan_cfg=self.mlaan_cfg,
            backbone=cfg['backbone'],
            batch_fn=lambda size: synthetic_batch(module, 2, size),
            checkpointed=checkpoint_blocks(
                cfg['checkpoint'],
                cfg['num_blocks'] or len(cfg['boundaries'] or ()) + 1))
        if cfg['objective'] is not None:  # replaces aux_head
            heads = objective_heads(cfg['objective'], plan.num_blocks)
        else:
            head = cfg['aux_head'] or default_aux_head(module)
            heads = [
                dict(h)
                for h in per_block(head, plan.num_blocks - 1, 'aux_head')
            ]
        for head in heads:
            if head.get('num_classes') is None:
                head['num_classes'] = infer_num_classes(module)
        aux = LocalAuxiliary(
            plan,
            head=heads,
            eta=self.eta_cfg,
            targets=TaskTargets.from_model(
                module, heads[0]['num_classes'] if heads else None),
            mlaan=self.mlaan_cfg)
        device = next(module.parameters()).device
        aux.to(device)
        pipeline = None
        if self.parallel is not None:
            check_world_size(plan)
            pipeline = BlockPipeline(
                plan, aux, module, stage_of_rank(get_rank(),
                                                 plan.num_blocks),
                self.parallel['depth'], self.parallel.get('timeline', False))

        self.optim_wrapper_cfg.update(
            model=module, plan=plan, aux=aux, signature=plan_signature(
                cfg['method'], cfg['objective'], self.eta_cfg, plan),
            checkpoint=cfg['checkpoint'], pipeline=pipeline)
        try:
            optim_wrapper = super().__call__(model)
        finally:
            for key in ('model', 'plan', 'aux', 'signature', 'checkpoint',
                        'pipeline'):
                self.optim_wrapper_cfg.pop(key)
        for group in self._aux_param_groups(aux):
            optim_wrapper.optimizer.add_param_group(group)
        if pipeline is not None:
            own_params(optim_wrapper.optimizer, plan, aux, module,
                       pipeline.stage)
        optim_wrapper.memory_plan = memory_plan  # what the budget chose
        return optim_wrapper

    def _aux_param_groups(self, aux: LocalAuxiliary) -> list:
        """Param groups of the auxiliary nets.

        With ``paramwise_cfg``, the trainable copy eta' of a unit is named
        like that unit (e.g. ``backbone.layer3.0.conv1.weight``), so keys,
        multipliers and decay rules meant for it apply to its copy too; the
        heads and scaling biases are named ``mmman_aux.*``. The branch
        balances of MAN++ (``decay=False``, the default) get no weight
        decay whatever the rules say.
        """
        no_decay = {
            id(p)
            for m in aux.modules() if getattr(m, 'decay', True) is False
            for p in m.parameters()
        }
        parts = aux.legacy_children()  # the order older checkpoints hold
        if not self.paramwise_cfg:
            params = aux.legacy_params()
            groups = [
                dict(params=[p for p in params if id(p) not in no_decay]),
                dict(params=[p for p in params if id(p) in no_decay],
                     weight_decay=0.0,
                     mmman_no_decay=True)
            ]
            return [g for g in groups if g['params']]
        groups: list = []
        copies = aux.copy_sources()
        for path, part in parts:
            self._add_aux_params(groups, part, path, copies)
        for group in groups:
            if any(id(p) in no_decay for p in group['params']):
                group['weight_decay'] = 0.0
        return groups

    def _add_aux_params(self, groups: list, module: nn.Module, path: str,
                        copies: dict) -> None:
        """Trainable copies under their unit's name, the rest under
        ``mmman_aux.<path>``; frozen EMA copies are left out."""
        if not any(p.requires_grad for p in module.parameters()):
            return  # eta'': frozen, moved by the EMA only
        if path in copies:
            self.add_params(groups, module, prefix=copies[path])
        elif any(c.startswith(path + '.') for c in copies):
            for name, child in module.named_children():
                self._add_aux_params(groups, child, f'{path}.{name}', copies)
        else:
            self.add_params(groups, module, prefix=f'mmman_aux.{path}')
