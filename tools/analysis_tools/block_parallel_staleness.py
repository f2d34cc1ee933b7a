"""Accuracy of block-parallel MAN/MAN++ against one process, seed by seed.

Block-parallel training lets eta'' follow block k+1's first unit
``eta.ema_delay`` steps late (default 1): the one setting in which it
differs from one-process training. For each seed this trains CONFIG in
one process (``ema_delay`` 0, the sequential method) and block-parallel on
K processes (``tools/dist_train.sh CONFIG K``, the default delay), and
reports the final validation accuracy of both, paired by seed.

    python tools/analysis_tools/block_parallel_staleness.py \\
        configs/mmpretrain/digits/resnet32_man++-k8_1xb64-coslr-10e_digits.py \\
        --blocks 4 --seeds 0 1 2 3 4 --out work_dirs/staleness.jsonl
"""
import argparse
import glob
import json
import os
import os.path as osp
import statistics
import subprocess
import sys

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('--blocks', type=int, default=2)
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2, 3,
                                                               4])
    parser.add_argument('--metric', default='accuracy/top1')
    parser.add_argument('--work-dir', default='work_dirs/staleness')
    parser.add_argument('--out', help='append one JSON line per seed')
    parser.add_argument('--cfg-options', nargs='+', default=[])
    return parser.parse_args(argv)


def final_metric(work_dir: str, metric: str) -> float:
    path = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data',
                                     'scalars.json')))[-1]
    rows = [json.loads(line) for line in open(path)]
    return [r[metric] for r in rows if metric in r][-1]


def main(argv=None):
    args = parse_args(argv)
    env = dict(os.environ, OMP_NUM_THREADS='1')
    os.makedirs(args.work_dir, exist_ok=True)
    common = [f'optim_wrapper.local_cfg.num_blocks={args.blocks}',
              'default_hooks.checkpoint.save_last=False',
              'default_hooks.checkpoint.interval=1000000', *args.cfg_options]
    pairs = []
    for seed in args.seeds:
        found = {}
        for arm in ('one_process', 'parallel'):
            work = osp.join(args.work_dir, f'seed{seed}_{arm}')
            opts = common + [f'randomness.seed={seed}']
            if arm == 'one_process':
                cmd = [sys.executable, 'tools/train.py', args.config,
                       '--work-dir', work, '--cfg-options', *opts,
                       'optim_wrapper.local_cfg.parallel=None']
            else:
                cmd = ['bash', 'tools/dist_train.sh', args.config,
                       str(args.blocks), '--work-dir', work,
                       '--cfg-options', *opts,
                       'optim_wrapper.local_cfg.parallel.type=blocks']
            with open(work + '.log', 'w') as f:
                if subprocess.run(cmd, cwd=ROOT, env=env, stdout=f,
                                  stderr=subprocess.STDOUT).returncode:
                    raise SystemExit(f'{" ".join(cmd)} failed: {work}.log')
            found[arm] = final_metric(work, args.metric)
        row = dict(config=args.config, blocks=args.blocks, seed=seed,
                   metric=args.metric, **found)
        pairs.append(row)
        print(json.dumps(row), flush=True)
        if args.out:
            with open(args.out, 'a') as f:
                f.write(json.dumps(row) + '\n')
    diffs = [r['parallel'] - r['one_process'] for r in pairs]
    print(f'{args.metric}: one process '
          f'{statistics.mean(r["one_process"] for r in pairs):.2f}, '
          f'block-parallel {statistics.mean(r["parallel"] for r in pairs):.2f}'
          f', paired difference {statistics.mean(diffs):+.2f}'
          + (f' (sd {statistics.stdev(diffs):.2f})' if len(diffs) > 1 else '')
          + f' over {len(diffs)} seeds')


if __name__ == '__main__':
    main()
