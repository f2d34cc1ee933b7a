"""The cheapest local plan of every block count within a memory limit.

Measures CONFIG as ``local_cfg.memory_budget`` does (each unit, each
boundary's eta + head phase, parameters and optimizer state, and what each
unit's forward and each boundary's eta compute), then prints, for K = 1, 2,
... blocks, the plan that adds the least compute to an E2E step (eta at its
boundaries, recomputation in checkpointed blocks; the heads are not
counted) while it stays within the limit: ``--budget`` (the predicted peak,
as ``memory_budget``) or ``--saved`` (the largest block's saved
activations, the ``saved MiB`` of ``benchmark_memory.py``). The planner
itself takes the first row; the others show what more blocks would buy.

    python tools/analysis_tools/budget_plans.py \\
        configs/mmseg/deeplabv3_r50-d8_man++-k4_4xb2-40k_cityscapes-512x1024.py \\
        --img-scale 512 1024 --saved 2140MiB
"""
import argparse
import copy
import json


def parse_args(argv=None):
    from mmman.apis import add_measurement_args
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_measurement_args(parser)
    limit = parser.add_mutually_exclusive_group(required=True)
    limit.add_argument('--budget', help="predicted peak, e.g. '3GiB'")
    limit.add_argument('--saved', help="largest block, e.g. '2140MiB'")
    parser.add_argument('--out', help='write the plans as JSON')
    return parser.parse_args(argv)


def main(argv=None):
    from mmengine.optim import build_optim_wrapper

    from mmman.apis import build_model_for_measurement
    from mmman.engine.budget_planner import measure_budget_costs
    from mmman.local.budget import cheapest_plans, parse_bytes
    from mmman.tasks import synthetic_batch
    args = parse_args(argv)
    scale = tuple(args.img_scale)
    cfg, model = build_model_for_measurement(args.config, args.cfg_options,
                                             'cpu', scale)

    def build_wrapper(model, num_blocks=None, boundaries=None):
        wrapper_cfg = copy.deepcopy(cfg.optim_wrapper)
        wrapper_cfg.local_cfg.update(
            num_blocks=num_blocks, boundaries=boundaries, balance=None,
            checkpoint=None, memory_budget=None)
        wrapper = build_optim_wrapper(model, wrapper_cfg)
        wrapper.alone = True
        wrapper.take_copies()
        return wrapper

    costs, units = measure_budget_costs(
        model, build_wrapper,
        lambda size: synthetic_batch(model, args.batch_size, size), scale)
    limit = dict(budget=parse_bytes(args.budget)) if args.budget else dict(
        saved=parse_bytes(args.saved))
    plans = cheapest_plans(costs, **limit)
    name = ', '.join(f'{k} {v / 2**20:.0f} MiB' for k, v in limit.items())
    print(f'{args.config} at {scale}, batch {args.batch_size}, {name}: '
          f'parameters, gradients and optimizer state {costs.static / 2**20:.0f} MiB')
    print('| K | blocks start at | checkpointed | largest block MiB | '
          'predicted peak MiB | eta + recomputation GFLOP |')
    print('|---|---|---|---|---|---|')
    rows = []
    for plan in plans:
        starts = [units[e + 1].name.split('.', 1)[-1] for e in plan.ends]
        ckpt = [k + 1 for k in plan.checkpointed]
        rows.append(dict(num_blocks=plan.num_blocks, starts=starts,
                         checkpoint=ckpt, largest=plan.activations,
                         predicted=plan.predicted,
                         extra_flops=plan.extra_flops))
        print(f'| {plan.num_blocks} | {", ".join(starts) or "–"} | '
              f'{ckpt or "–"} | {plan.activations / 2**20:.0f} | '
              f'{plan.predicted / 2**20:.0f} | '
              f'{plan.extra_flops / 1e9:.1f} |')
    if not plans:
        print('no plan stays within the limit')
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(dict(config=args.config, img_scale=list(scale),
                           batch_size=args.batch_size, **limit,
                           costs=costs.to_dict(), plans=rows), f, indent=1)


if __name__ == '__main__':
    main()
