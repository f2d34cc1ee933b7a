"""The methods one config field selects: their eta and MLAAN presets."""
import copy
from typing import Optional

_MAN = dict(learnable_copy=True, ema=True, scale_bias=None, recompute=True)

# One config field switches the enhancement; `eta` may still override the
# preset for the ablations (e.g. ``eta=dict(learnable_copy=False)`` = EMA
# only). ``mlaan``: the MLAAN paths (independent probe + cascade through the
# real next block + leap module); with an eta (MLAAN + MAN), MAN's own loss
# f(Phi(eta(h))) is added with the weight ``wm``. ``recompute``: the eta
# branches recompute their activations in the local backward (exact; the
# auxiliary phase holds one branch's activations, not two).
METHODS = {
    'e2e': None,
    'local': dict(eta=None),
    'dgl': dict(eta=None),  # the former name of 'local' (no enhancement)
    'man': dict(eta=_MAN),
    'man++': dict(eta=dict(_MAN, balance=dict(type='BranchBalance'))),
    'mlaan': dict(eta=None, mlaan=True),
    'mlaan+man': dict(eta=_MAN, mlaan=True),
}


def _check_method(method: str) -> dict:
    if method not in METHODS:
        raise ValueError(f'local learning: unknown method "{method}"; '
                         f'choose from {sorted(METHODS)}.')
    return METHODS[method]


def resolve_eta_cfg(method: str, eta: Optional[dict],
                    momentum: float) -> Optional[dict]:
    """The eta config of ``method``, updated by the ``eta`` overrides."""
    preset = _check_method(method)
    if preset is None:
        return None
    cfg = copy.deepcopy(preset['eta'])
    if eta is not None:
        cfg = dict(cfg or {}, **eta)
    if cfg is None:
        return None
    cfg.setdefault('momentum', momentum)
    return cfg


def resolve_mlaan_cfg(method: str,
                      mlaan: Optional[dict],
                      momentum: float,
                      eta_cfg: Optional[dict] = None) -> Optional[dict]:
    """MLAAN settings of ``method`` (None when it is no MLAAN method).

    ``eta_cfg`` (the resolved eta of the run): with an eta (MLAAN + MAN),
    MAN's own local loss ``wm * f(Phi(eta(h)))`` joins MLAAN's.
    """
    preset = _check_method(method)
    if not (preset or {}).get('mlaan'):
        if mlaan is not None:
            raise ValueError('local learning: `mlaan` settings need method '
                             '\'mlaan\' or \'mlaan+man\'.')
        return None
    cfg = dict(
        wx=0.001,
        wy=0.999,
        leap_units=1,
        momentum=momentum,
        cascade_bn_update=False)
    if eta_cfg is not None:
        # MLAAN + MAN: MAN's own local loss, f(Phi(eta(h))), takes half of
        # the cascade's published weight (docs/methods.md).
        cfg.update(wy=0.4995, wm=0.4995)
    cfg.update(mlaan or {})
    if 'wm' in cfg and eta_cfg is None:
        raise ValueError('local learning: `mlaan.wm` weighs MAN\'s eta '
                         'head: it needs method \'mlaan+man\'.')
    return cfg
