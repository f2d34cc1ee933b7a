"""What memory balancing costs when the optim wrapper is built.

Builds the config's model (random weights) and its local optim wrapper twice,
with the config's split and with the even split, and reports the seconds and
the peak memory of each build (process RSS on CPU,
``torch.cuda.max_memory_allocated`` on CUDA). The image scale of ``balance``
is taken from the train pipeline when the config does not give one; nothing
is cached (``cache_dir`` is removed), so this is the cost of a first run.

    python tools/analysis_tools/balance_cost.py \\
        configs/benchmarks/memory/faster-rcnn_r50_fpn_man++-k4-balanced_1x_coco.py
"""
import argparse
import copy
import importlib
import time
import warnings

warnings.filterwarnings(  # emitted by mmengine's import on setuptools 80
    'ignore', message='pkg_resources is deprecated', category=UserWarning)

import torch  # noqa: E402
from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.optim import build_optim_wrapper  # noqa: E402
from mmengine.registry import MODELS, init_default_scope  # noqa: E402

import mmman  # noqa: F401,E402
from mmman.apis import configure_balance  # noqa: E402
from mmman.utils import PeakMemory  # noqa: E402


def build_cost(model, wrapper_cfg, device) -> tuple:
    """(seconds, peak bytes, block plan) of one optim-wrapper build."""
    with PeakMemory(device) as peak:
        start = time.perf_counter()
        wrapper = build_optim_wrapper(model, copy.deepcopy(wrapper_cfg))
        seconds = time.perf_counter() - start
    return seconds, peak.peak_bytes, wrapper.plan


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('--device', default=None,
                        help='default: cuda if available, else cpu')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, e.g. '
                        'optim_wrapper.local_cfg.balance=True')
    args = parser.parse_args()
    device = torch.device(args.device or (
        'cuda' if torch.cuda.is_available() else 'cpu'))
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    configure_balance(cfg)  # the scale from the train pipeline if not given
    balance = cfg.optim_wrapper.get('local_cfg', {}).get('balance')
    if balance is None:
        raise SystemExit('error: the config has no local_cfg.balance')
    balance.pop('cache_dir', None)  # the cost of a first run: never cached
    if balance.get('img_scale') is None:
        raise SystemExit('error: the train pipeline fixes no image size; '
                         'give local_cfg.balance.img_scale')
    scope = cfg.get('default_scope', 'mmdet')
    importlib.import_module(f'{scope}.utils').register_all_modules(False)
    init_default_scope(scope)
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.get('backbone', {}).pop('init_cfg', None)  # nothing downloaded
    model = MODELS.build(model_cfg).to(device).train()
    even = copy.deepcopy(cfg.optim_wrapper)
    even.local_cfg.balance = None
    rows = [('even', *build_cost(model, even, device)),
            ('balanced', *build_cost(model, cfg.optim_wrapper, device))]
    print(f'{args.config}\nimg_scale {tuple(balance.img_scale)}, '
          f'device {device}'
          f'{" (" + torch.cuda.get_device_name(device) + ")" if device.type == "cuda" else ""}')
    print('| split | build seconds | peak memory MiB | block ends |')
    print('|---|---|---|---|')
    for name, seconds, peak, plan in rows:
        ends = ', '.join(plan.units[e].name.split('.', 1)[-1]
                         for e in plan.ends)
        print(f'| {name} | {seconds:.2f} | {peak / 2**20:.0f} | {ends} |')


if __name__ == '__main__':
    main()
