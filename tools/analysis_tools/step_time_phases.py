"""Where a local training step spends its time, phase by phase.

Builds CONFIG as ``benchmark_memory.py`` does (random weights, synthetic
images), runs one warm-up step, then times ``--iters`` steps split at the
block boundaries: each block's forward, each auxiliary phase (eta, head and
the block's own local backward, run in the pre-hook of the next block's
first unit), the last block's forward, the tail's forward (neck, heads,
losses) and the model loss's backward with the optimizer step.

    python tools/analysis_tools/step_time_phases.py \\
        configs/mmdet/faster-rcnn_r50_fpn_man++-k4_1x_coco.py --img-scale 800 1333
"""
import argparse
import copy


def parse_args(argv=None):
    from mmman.apis import add_measurement_args
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_measurement_args(parser)
    parser.add_argument('--iters', type=int, default=2)
    return parser.parse_args(argv)


def main(argv=None):
    from mmman.apis import build_for_measurement
    from mmman.engine.step_phases import step_phases
    from mmman.tasks import synthetic_batch
    args = parse_args(argv)
    model, wrapper = build_for_measurement(args.config, args.cfg_options,
                                           'cpu', tuple(args.img_scale))
    if getattr(wrapper, 'plan', None) is None:
        raise SystemExit('step_time_phases: the config trains end to end; '
                         'there are no block phases to time.')
    batch = synthetic_batch(model, args.batch_size, tuple(args.img_scale))
    model.train_step(copy.deepcopy(batch), wrapper)  # warm-up
    for i in range(args.iters):
        phases = step_phases(model, wrapper, batch)
        total = sum(s for _, s in phases)
        print(f'step {i + 1}: {total:.2f} s | ' +
              ' | '.join(f'{tag} {s:.2f}' for tag, s in phases))


if __name__ == '__main__':
    main()
