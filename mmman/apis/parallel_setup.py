"""Runner settings of a block-parallel run (``local_cfg.parallel``)."""
import copy
import os

from mmengine.config import Config

from mmman.engine.block_parallel import UNSPLIT_SAMPLERS, BlockParallelError

from .balance_setup import pipeline_img_scale


def configure_block_parallel(cfg: Config) -> bool:
    """With ``local_cfg.parallel``: the model wrapper that trains one block
    per process, a train sampler that gives every process the same batches
    (block 1's loads them; the others, ``RANK`` != 1, get them with its
    output and load nothing: :class:`BlockParallelBatchSource`) and
    :class:`~mmman.engine.BlockParallelHook` (the whole-model moments).
    Returns whether it applied."""
    local_cfg = cfg.get('optim_wrapper', {}).get('local_cfg') or {}
    if local_cfg.get('parallel') is None:
        return False
    if cfg.get('launcher', 'none') == 'none':
        return False  # testing; training stops at the world size check
    wrapper = cfg.get('model_wrapper_cfg')
    if wrapper is not None and wrapper.get('type') != 'BlockParallelModel':
        raise BlockParallelError(
            f'local_cfg.parallel needs model_wrapper_cfg=dict(type='
            f"'BlockParallelModel'), not {wrapper}.")
    cfg.model_wrapper_cfg = dict(type='BlockParallelModel')
    for hook in cfg.get('custom_hooks') or []:
        if str(hook.get('type', '')).split('.')[-1] == 'EMAHook':
            raise BlockParallelError(
                'local_cfg.parallel with EMAHook: it averages every parameter '
                'of the model after each step, but each block-parallel '
                "process trains and holds only its own block's. Remove the "
                'EMAHook from custom_hooks or train in one process.')
    sampler = cfg.train_dataloader.get('sampler') or {}
    kind = sampler.get('type', 'DefaultSampler')
    if kind.split('.')[-1] not in UNSPLIT_SAMPLERS.values():
        if kind.split('.')[-1] not in UNSPLIT_SAMPLERS:
            raise BlockParallelError(
                f'local_cfg.parallel: every process reads the same batches, '
                f'which mmman does for DefaultSampler and InfiniteSampler, '
                f'not the train sampler {kind}.')
        sampler['type'] = UNSPLIT_SAMPLERS[kind.split('.')[-1]]
    cfg.train_dataloader.sampler = sampler
    parallel = local_cfg['parallel']
    if parallel.get('balance') == 'time':  # measured at the run's size
        if parallel.get('img_scale') is None:
            parallel['img_scale'] = pipeline_img_scale(cfg)
        parallel.setdefault('batch_size', cfg.train_dataloader.batch_size)
        parallel.setdefault('cache_dir', cfg.get('work_dir'))
        parallel.setdefault('loader', dict(  # what block 1's process loads
            dataset=copy.deepcopy(cfg.train_dataloader.dataset),
            collate_fn=cfg.train_dataloader.get('collate_fn')))
    if os.environ.get('RANK', '1') != '1':  # not block 1's process
        cfg.train_dataloader.dataset = dict(
            type='BlockParallelBatchSource',
            dataset=cfg.train_dataloader.dataset)
    hooks = list(cfg.get('custom_hooks') or [])
    if not any(h.get('type') == 'BlockParallelHook' for h in hooks):
        cfg.custom_hooks = hooks + [dict(type='BlockParallelHook')]
    return True
