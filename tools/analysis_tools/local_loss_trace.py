"""Trace a local-learning config's first training steps on synthetic input.

Builds the config's model (random weights, as the memory benchmark does),
trains it for ``--steps`` steps on one synthetic batch per step at the given
size and prints, per step, every block's local loss terms, the model's own
losses and, per block, the gradient norm and MAN++'s balance scalar s. It
stops at the first non-finite loss and says where. Used to find why a
config diverges (docs/methods.md)::

    python tools/analysis_tools/local_loss_trace.py CONFIG \\
        --img-scale 800 1333 --batch-size 2 --steps 5
"""
import argparse
import math
import warnings

warnings.filterwarnings(  # emitted by mmengine's import on setuptools 80
    'ignore', message='pkg_resources is deprecated', category=UserWarning)

import torch  # noqa: E402
from mmengine.logging import MessageHub  # noqa: E402

import mmman  # noqa: F401,E402
from mmman.apis import (add_measurement_args,  # noqa: E402
                        build_for_measurement)
from mmman.engine import NonFiniteLocalLossError  # noqa: E402
from mmman.tasks import synthetic_batch  # noqa: E402


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    add_measurement_args(parser)
    parser.add_argument('--steps', type=int, default=5)
    parser.add_argument('--seed', type=int, default=0)
    return parser.parse_args()


def _norm(params) -> float:
    grads = [p.grad.detach().float() for p in params if p.grad is not None]
    return math.sqrt(sum(float(g.pow(2).sum()) for g in grads))


def main():
    args = parse_args()
    torch.manual_seed(args.seed)
    model, wrapper = build_for_measurement(args.config, args.cfg_options,
                                           img_scale=args.img_scale)
    hub = MessageHub.get_current_instance()
    size = tuple(args.img_scale)
    print(f'{args.config} at {args.batch_size} x {size[0]}x{size[1]}')
    print(wrapper.plan.describe())
    norms = {}
    step = wrapper.step

    def step_and_measure(**kwargs):  # gradient norms before the update
        norms.clear()
        for k, params in enumerate(wrapper.block_groups):
            norms[k] = _norm(params)
        step(**kwargs)

    wrapper.step = step_and_measure
    for it in range(args.steps):
        hub.update_info('iter', it)
        batch = synthetic_batch(model, args.batch_size, size)
        try:
            log_vars = model.train_step(batch, wrapper)
        except NonFiniteLocalLossError as error:
            print(f'step {it + 1}: {error}')
            return
        print(f'step {it + 1}: model ' + ', '.join(
            f'{n}={float(v.detach()):.4g}' for n, v in log_vars.items()))
        for k in range(wrapper.plan.num_blocks - 1):
            terms = {
                n.split('_', 1)[1]: s.current()
                for n, s in hub.log_scalars.items()
                if n.startswith(f'train/local{k + 1}_')
            }
            eta = wrapper.aux.etas[k]
            balance = getattr(eta, 'balance', None)
            s = f', s={float(balance.s):.4f}' if balance is not None else ''
            print(f'  block {k + 1}: ' + ', '.join(
                f'{n}={v:.4g}' for n, v in terms.items()) +
                  f', grad norm={norms.get(k, float("nan")):.4g}{s}')
        print(f'  last block: grad norm={norms.get(len(norms) - 1, 0):.4g}')


if __name__ == '__main__':
    main()
