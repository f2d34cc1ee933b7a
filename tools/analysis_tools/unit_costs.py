"""What each backbone unit costs at a training size, and MAN's eta before it.

For every unit of CONFIG's backbone, at ``--img-scale``: the activations it
saves for backward (measured at two reduced sizes and extrapolated, as the
balanced split does), the FLOPs of its forward in an E2E step, and the FLOPs
of the config's eta (``local_cfg.method`` and ``local_cfg.eta``: both
branches, forward, backward and any recomputation) at a block boundary
before it, run on what the unit receives. The auxiliary head is not
included. Costs are in E2E's terms: saved bytes against E2E's total, FLOPs
against E2E's training step (forward and backward). Where a local plan must
keep its peak under a given size, this shows which boundaries it can use
and what their eta costs.

    python tools/analysis_tools/unit_costs.py \\
        configs/mmseg/deeplabv3_r50-d8_man++-k4_4xb2-40k_cityscapes-512x1024.py \\
        --img-scale 512 1024 --out unit_costs.json
"""
import argparse
import copy
import json


def parse_args(argv=None):
    from mmman.apis import add_measurement_args
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_measurement_args(parser)
    parser.add_argument('--out', help='write the rows as JSON')
    return parser.parse_args(argv)


def eta_config(config: str, cfg_options=None):
    """The config's resolved eta arguments (None for a method without)."""
    from mmengine.config import Config

    from mmman.engine.constructor import DEFAULT_LOCAL_CFG
    from mmman.local.methods import resolve_eta_cfg
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    local = dict(DEFAULT_LOCAL_CFG,
                 **cfg.optim_wrapper.get('local_cfg', None) or {})
    return resolve_eta_cfg(local['method'], local.get('eta'),
                           local['momentum'])


def main(argv=None):
    from mmman.apis import build_for_measurement
    from mmman.local.balance import estimate_costs
    from mmman.local.compute import build_eta, etas_flops, unit_flops
    from mmman.local.partition import backbone_units
    from mmman.tasks import synthetic_batch
    args = parse_args(argv)
    scale = tuple(args.img_scale)
    model, _ = build_for_measurement(args.config, args.cfg_options, 'cpu',
                                     scale)
    units, _ = backbone_units(model)
    saved, stem, tail = estimate_costs(
        model, units, lambda hw: synthetic_batch(model, args.batch_size,
                                                 tuple(hw)), scale)
    total_saved = sum(saved) + stem + tail
    batch = synthetic_batch(model, args.batch_size, scale)
    flops = unit_flops(model, units, batch, backward=True)
    total_flops = flops['total']
    eta_cfg = eta_config(args.config, args.cfg_options)
    etas = {} if eta_cfg is None else etas_flops(model, units, {
        i: build_eta(unit, eta_cfg)
        for i, unit in enumerate(units) if i > 0 and unit.trainable
    }, batch)
    rows = [
        dict(unit=unit.name, trainable=unit.trainable, saved=saved[i],
             forward_flops=flops[i], eta_flops=etas.get(i))
        for i, unit in enumerate(units)
    ]
    print(f'{args.config} at {scale}, batch {args.batch_size}: E2E saves '
          f'{total_saved / 2**20:.0f} MiB (stem {stem / 2**20:.0f}, tail '
          f'{tail / 2**20:.0f}); E2E step {total_flops / 1e9:.0f} GFLOP '
          f'(forward of the stem {flops["stem"] / 1e9:.1f}, of the tail '
          f'{flops["tail"] / 1e9:.1f})')
    print('| unit | saved MiB (x E2E) | forward GFLOP (x E2E step) | '
          'eta before it, GFLOP (x E2E step) |')
    print('|---|---|---|---|')
    for r in rows:
        eta = ('–' if r['eta_flops'] is None else
               f"{r['eta_flops'] / 1e9:.1f} "
               f"({r['eta_flops'] / total_flops:.3f})")
        print(f"| {r['unit']}{'' if r['trainable'] else ' (frozen)'} | "
              f"{r['saved'] / 2**20:.0f} ({r['saved'] / total_saved:.3f}) | "
              f"{r['forward_flops'] / 1e9:.1f} "
              f"({r['forward_flops'] / total_flops:.3f}) | {eta} |")
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(dict(config=args.config, img_scale=list(scale),
                           batch_size=args.batch_size, eta=eta_cfg,
                           e2e_saved=total_saved, stem=stem, tail=tail,
                           e2e_step_flops=total_flops,
                           stem_forward_flops=flops['stem'],
                           tail_forward_flops=flops['tail'], units=rows), f,
                      indent=1)


if __name__ == '__main__':
    main()
