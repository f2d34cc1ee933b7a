"""``--amp`` that keeps local learning: the AMP twin of the optim wrapper."""
from mmengine.config import Config


def enable_amp(cfg: Config) -> None:
    """Turn on mixed precision without dropping local learning.

    MMDet's ``--amp`` replaces the wrapper type by ``AmpOptimWrapper``, which
    would silently train end to end; here the local wrapper becomes its AMP
    twin, whose local backward calls share the model's loss scaler. Needs
    CUDA; the config change itself is :func:`amp_optim_wrapper`.
    """
    import torch
    if not torch.cuda.is_available():
        raise RuntimeError('--amp needs a CUDA device (MMEngine\'s '
                           'AmpOptimWrapper does not run on CPU).')
    amp_optim_wrapper(cfg)


_AMP_TWINS = {
    'OptimWrapper': 'AmpOptimWrapper',
    'LocalOptimWrapper': 'LocalAmpOptimWrapper'
}


def optim_wrapper_type(wrapper: dict) -> str:
    """Name of the optim wrapper a config builds, its constructor's default
    included: without ``type``, ``LocalOptimWrapperConstructor`` builds
    ``LocalOptimWrapper`` and MMEngine's constructors ``OptimWrapper``."""
    kind = wrapper.get('type')
    if kind is not None:
        return kind if isinstance(kind, str) else kind.__name__
    from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS
    from mmman.engine import LocalOptimWrapperConstructor
    constructor = wrapper.get('constructor', 'DefaultOptimWrapperConstructor')
    if isinstance(constructor, str):
        constructor = OPTIM_WRAPPER_CONSTRUCTORS.get(constructor)
    if isinstance(constructor, type) and issubclass(
            constructor, LocalOptimWrapperConstructor):
        return 'LocalOptimWrapper'
    return 'OptimWrapper'


def amp_optim_wrapper(cfg: Config) -> None:
    """Switch ``cfg.optim_wrapper`` to the AMP twin of the wrapper it builds
    (``LocalOptimWrapper`` -> ``LocalAmpOptimWrapper``, ``OptimWrapper`` ->
    ``AmpOptimWrapper``) with dynamic loss scaling unless set."""
    wrapper = cfg.optim_wrapper
    kind = optim_wrapper_type(wrapper)
    if kind in _AMP_TWINS.values():
        return
    if kind not in _AMP_TWINS:
        raise ValueError(f'--amp: cannot make {kind} mixed precision.')
    wrapper.type = _AMP_TWINS[kind]
    wrapper.setdefault('loss_scale', 'dynamic')
