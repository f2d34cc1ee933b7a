"""Tensor ops and host syncs of one training step, and where the syncs are.

On a GPU every op is a kernel launch and every host sync (``.item()``,
``int(t)``: ``aten._local_scalar_dense``; ``nonzero``, whose output size is
read back; ``torch.equal``) stalls the device; this counts them on any
device. Builds CONFIG as ``benchmark_memory.py`` does (random weights,
synthetic images with 8 boxes or a mask each), runs one warm-up step, then
counts one step.

    python tools/analysis_tools/dispatch_count.py \\
        configs/mmdet/faster-rcnn_r50_fpn_man++-k4_1x_coco.py --img-scale 64 64
"""
import argparse
import copy


def parse_args(argv=None):
    from mmman.apis import add_measurement_args
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_measurement_args(parser, img_scale=(64, 64))
    parser.add_argument('--top', type=int, default=10,
                        help='sync sites listed')
    return parser.parse_args(argv)


def main(argv=None):
    import torch

    from mmman.apis import build_for_measurement
    from mmman.tasks import synthetic_batch
    from mmman.utils import DispatchCounter
    args = parse_args(argv)
    model, wrapper = build_for_measurement(args.config, args.cfg_options,
                                           'cpu', tuple(args.img_scale))
    batch = synthetic_batch(model, args.batch_size, tuple(args.img_scale))
    torch.manual_seed(0)
    model.train_step(copy.deepcopy(batch), wrapper)  # warm-up
    torch.manual_seed(1)
    with DispatchCounter(sync_sites=True) as counter:
        model.train_step(copy.deepcopy(batch), wrapper)
    print(f'{args.config}: {counter.total} ops, {counter.host_syncs} host '
          'syncs per step')
    for site, n in counter.sites.most_common(args.top):
        print(f'{n:6d}  {site}')


if __name__ == '__main__':
    main()
