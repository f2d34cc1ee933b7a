"""Process groups of mmman's tools: gloo on a CPU machine, a clean end."""
from mmengine.config import Config


def init_cpu_distributed(cfg: Config) -> bool:
    """Start ``torch.distributed`` with gloo for ``--launcher pytorch``
    on a machine without an accelerator.

    MMEngine's pytorch launcher calls ``torch.cuda.set_device`` first, and
    its ``Runner.wrap_model`` gives DDP ``device_ids=[LOCAL_RANK]``, which
    DDP refuses for a CPU model. ``Runner.setup_env`` starts no process group
    when one exists, so this one starts it from torchrun's environment
    (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``), keeping
    ``env_cfg.dist_cfg.timeout``, and sets ``device_ids=None`` for a DDP
    model wrapper. Returns whether it applied.
    """
    import datetime

    import torch.distributed as dist
    from mmengine.device import get_device
    if cfg.get('launcher', 'none') != 'pytorch' or get_device() != 'cpu':
        return False
    if not dist.is_initialized():
        timeout = cfg.get('env_cfg', {}).get('dist_cfg', {}).get('timeout')
        kwargs = {} if timeout is None else dict(
            timeout=datetime.timedelta(seconds=timeout))
        dist.init_process_group(backend='gloo', init_method='env://', **kwargs)
    from mmengine.registry import MODEL_WRAPPERS
    from torch.nn.parallel import DistributedDataParallel
    if cfg.get('model_wrapper_cfg') is None:  # MMEngine's default wrapper
        cfg.model_wrapper_cfg = dict(
            type='MMDistributedDataParallel',
            broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False))
    wrapper = cfg.model_wrapper_cfg
    kind = wrapper.get('type', 'MMDistributedDataParallel')
    if isinstance(kind, str):
        kind = MODEL_WRAPPERS.get(kind)
    if isinstance(kind, type) and issubclass(kind, DistributedDataParallel):
        wrapper.setdefault('device_ids', None)
    return True


def close_distributed() -> None:
    """End of a tool: wait for every rank, then tear the process group down
    (MMEngine leaves it open; a gloo group torn down by the interpreter's
    exit can abort a rank with "terminate called without an active
    exception")."""
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
