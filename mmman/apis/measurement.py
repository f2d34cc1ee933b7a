"""A config's model and optim wrapper for a measurement on synthetic input
(the memory benchmark, the local-loss trace): random weights, nothing
downloaded, balanced for the measured size, copies taken; and the arguments
the one-config measuring tools share."""
import argparse
import copy
import importlib

from mmengine.config import Config, DictAction

from .balance_setup import configure_balance


def add_measurement_args(parser: argparse.ArgumentParser,
                         img_scale=(800, 1333)) -> None:
    """CONFIG, ``--img-scale H W``, ``--batch-size`` and ``--cfg-options``:
    the arguments of a tool measuring steps of one config."""
    parser.add_argument('config')
    parser.add_argument('--img-scale', type=int, nargs=2, default=img_scale,
                        metavar=('H', 'W'))
    parser.add_argument('--batch-size', type=int, default=2)
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        metavar='KEY=VALUE')


def build_model_for_measurement(config: str, cfg_options=None,
                                device='cpu', img_scale=(800, 1333)):
    """``(cfg, model)`` of ``config``: random weights, in train mode on
    ``device``; a balanced split balances at ``img_scale``."""
    from mmengine.registry import MODELS, init_default_scope
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    configure_balance(cfg, tuple(img_scale))  # balanced for the size measured
    scope = cfg.get('default_scope', 'mmdet')
    importlib.import_module(f'{scope}.utils').register_all_modules(False)
    init_default_scope(scope)
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.pop('pretrained', None)  # random weights: nothing downloaded
    model_cfg.get('backbone', {}).pop('init_cfg', None)
    model = MODELS.build(model_cfg).to(device)
    model.train()
    return cfg, model


def build_for_measurement(config: str, cfg_options=None, device='cpu',
                          img_scale=(800, 1333)):
    """``(model, optim_wrapper)`` of ``config``, in train mode on
    ``device``."""
    from mmengine.optim import build_optim_wrapper

    from mmman.engine import start_local_training
    cfg, model = build_model_for_measurement(config, cfg_options, device,
                                             img_scale)
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    start_local_training(wrapper)
    return model, wrapper
