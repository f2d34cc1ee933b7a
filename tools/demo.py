"""Quick start: MAN++ training + evaluation on a generated dataset.

``det`` (the default): generates COCO-format shapes (data/coco_shapes),
trains Faster R-CNN on a small ResNet-18 with MAN++ (K=4), evaluates with
CocoMetric, and measures one training iteration's memory against E2E.
``seg``: the same with DeepLabV3 on generated shapes, evaluated by mIoU;
``cls``: a CIFAR ResNet-20 in MMPretrain on generated 32x32 shapes, evaluated
by top-1 accuracy::

    python tools/demo.py [--task det|seg|cls] [--iters N] [--work-dir DIR]
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
from mmman.datasets import (make_coco_shapes, make_shapes_classification,
                            make_shapes_segmentation)
from mmman.engine import start_local_training
from mmman.utils import measure_train_step

CONFIGS = osp.join(osp.dirname(osp.abspath(__file__)), '..', 'configs',
                   'demo')
TASKS = dict(
    det=dict(
        title='Faster R-CNN R18-FPN on generated COCO-format shapes',
        config='faster-rcnn_r18_fpn_man++-k4_600it_coco-shapes-128.py',
        scope='mmdet',
        make=lambda root: make_coco_shapes(root, num_train=300, num_val=60),
        metrics=('coco/bbox_mAP', 'coco/bbox_mAP_50')),
    seg=dict(
        title='DeepLabV3 R18-d8 on generated shapes',
        config='deeplabv3_r18-d8_man++-k4_300it_shapes-64x64.py',
        scope='mmseg',
        make=make_shapes_segmentation,
        metrics=('mIoU', 'aAcc')),
    cls=dict(
        title='ResNet-20 (CIFAR) on generated 32x32 shapes',
        config='resnet20_man++-k4_1xb64-600it_shapes-cls-32x32.py',
        scope='mmpretrain',
        make=lambda root: make_shapes_classification(
            root, num_train=2000, num_val=500),
        metrics=('accuracy/top1', )))


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--task', choices=sorted(TASKS), default='det')
    parser.add_argument('--iters', type=int, default=600)
    parser.add_argument('--work-dir', default=None)
    parser.add_argument('--data-root', default=None,
                        help='where to generate the data (config default)')
    return parser.parse_args()


def one_iteration_memory(cfg, scope, method):
    """Peak saved-activation and process bytes of one training iteration."""
    init_default_scope(scope)
    torch.manual_seed(0)
    model = MODELS.build(copy.deepcopy(cfg.model))
    model.train()
    wrapper_cfg = copy.deepcopy(cfg.optim_wrapper)
    wrapper_cfg.local_cfg.method = method
    MessageHub.get_instance(f'demo_memory_{method}')
    wrapper = build_optim_wrapper(model, wrapper_cfg)
    start_local_training(wrapper)
    loader = Runner.build_dataloader(cfg.train_dataloader, seed=0)
    batch = next(iter(loader))
    model.train_step(copy.deepcopy(batch), wrapper)  # warm up allocator
    return measure_train_step(model, batch, wrapper)


def short_schedule(cfg, iters):
    cfg.train_cfg.max_iters = iters
    cfg.train_cfg.val_interval = iters
    cfg.param_scheduler[-1].end = iters
    if 'T_max' in cfg.param_scheduler[-1]:
        cfg.param_scheduler[-1].T_max = iters
    cfg.default_hooks.checkpoint.interval = iters
    cfg.default_hooks.logger.interval = max(1, min(100, iters // 6))


def set_data_root(cfg, root):
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].dataset.data_root = root
    for evaluator in (cfg.val_evaluator, cfg.test_evaluator):
        if 'ann_file' in evaluator:
            evaluator.ann_file = osp.join(
                root, 'annotations', 'instances_val2017.json')


def main():
    args = parse_args()
    task = TASKS[args.task]
    cfg = Config.fromfile(osp.join(CONFIGS, task['config']))
    if args.data_root:
        set_data_root(cfg, args.data_root)
    task['make'](cfg.train_dataloader.dataset.data_root)
    cfg.work_dir = args.work_dir or f'work_dirs/quickstart_{args.task}'
    short_schedule(cfg, args.iters)

    runner = Runner.from_cfg(cfg)
    runner.train()
    metrics = runner.val_loop.run()

    e2e = one_iteration_memory(cfg, task['scope'], 'e2e')
    man = one_iteration_memory(cfg, task['scope'], 'man++')
    mib = 2**20
    batch = cfg.train_dataloader.batch_size
    print(f'\n=== mmman quick start: {task["title"]}, MAN++ K=4, '
          f'{args.iters} iterations ===')
    print('val: ' + '   '.join(f'{k}: {metrics[k]:.3f}'
                               for k in task['metrics']))
    print(f'one training iteration (batch {batch}), peak saved activations: '
          f'E2E {e2e["peak_saved_bytes"] / mib:.2f} MiB, MAN++ K=4 '
          f'{man["peak_saved_bytes"] / mib:.2f} MiB '
          f'({man["peak_saved_bytes"] / e2e["peak_saved_bytes"]:.2f}x, '
          f'{1 - man["peak_saved_bytes"] / e2e["peak_saved_bytes"]:.0%} '
          'saved)')
    print(f'work dir: {osp.abspath(runner.work_dir)}')


if __name__ == '__main__':
    main()
