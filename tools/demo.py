"""Quick start: MAN++ training + evaluation on a generated dataset.

Generates the shapes segmentation dataset (data/shapes), trains DeepLabV3 on
a ResNetV1c-18-d8 with MAN++ (K=4) for a few hundred iterations, evaluates
mIoU, and measures one training iteration's memory against E2E::

    python tools/demo.py [--iters 600] [--work-dir work_dirs/quickstart]
"""
import argparse
import copy
import os.path as osp
import warnings

warnings.filterwarnings(  # emitted by mmengine's import on setuptools 80
    'ignore', message='pkg_resources is deprecated', category=UserWarning)

import torch
from mmengine.config import Config
from mmengine.logging import MessageHub
from mmengine.optim import build_optim_wrapper
from mmengine.registry import MODELS, init_default_scope
from mmengine.runner import Runner

import mmman  # noqa: F401
from mmman.datasets import make_shapes_segmentation
from mmman.utils import measure_train_step

CONFIG = osp.join(
    osp.dirname(__file__), '..', 'configs', 'demo',
    'deeplabv3_r18-d8_man++-k4_300it_shapes-64x64.py')


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--iters', type=int, default=600)
    parser.add_argument('--work-dir', default='work_dirs/quickstart')
    parser.add_argument('--data-root', default='data/shapes')
    return parser.parse_args()


def one_iteration_memory(cfg, method):
    """Peak saved-activation and process bytes of one training iteration."""
    init_default_scope('mmseg')
    torch.manual_seed(0)
    model = MODELS.build(copy.deepcopy(cfg.model))
    model.train()
    wrapper_cfg = copy.deepcopy(cfg.optim_wrapper)
    wrapper_cfg.local_cfg.method = method
    MessageHub.get_instance(f'demo_memory_{method}')
    wrapper = build_optim_wrapper(model, wrapper_cfg)
    loader = Runner.build_dataloader(cfg.train_dataloader, seed=0)
    batch = next(iter(loader))
    model.train_step(copy.deepcopy(batch), wrapper)  # warm up allocator
    return measure_train_step(model, batch, wrapper)


def main():
    args = parse_args()
    make_shapes_segmentation(args.data_root)
    cfg = Config.fromfile(CONFIG)
    cfg.work_dir = args.work_dir
    cfg.train_cfg.max_iters = args.iters
    cfg.train_cfg.val_interval = args.iters
    cfg.param_scheduler[0].end = args.iters
    cfg.default_hooks.checkpoint.interval = args.iters
    cfg.default_hooks.logger.interval = 100
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].dataset.data_root = args.data_root

    runner = Runner.from_cfg(cfg)
    runner.train()
    metrics = runner.val_loop.run()

    e2e = one_iteration_memory(cfg, 'e2e')
    man = one_iteration_memory(cfg, 'man++')
    mib = 2**20
    print('\n=== mmman quick start: DeepLabV3 R18-d8, MAN++ K=4, '
          f'{args.iters} iterations on generated shapes ===')
    print(f'mIoU (val, 32 images): {metrics["mIoU"]:.2f}   '
          f'aAcc: {metrics["aAcc"]:.2f}')
    print('one training iteration (batch 8, 64x64), peak saved activations: '
          f'E2E {e2e["peak_saved_bytes"] / mib:.2f} MiB, MAN++ K=4 '
          f'{man["peak_saved_bytes"] / mib:.2f} MiB '
          f'({man["peak_saved_bytes"] / e2e["peak_saved_bytes"]:.2f}x)')
    print(f'work dir: {osp.abspath(runner.work_dir)}')


if __name__ == '__main__':
    main()
