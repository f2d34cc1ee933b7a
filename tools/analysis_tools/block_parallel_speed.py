"""Throughput of block-parallel training against one process.

Trains CONFIG with mmman's own tools, one thread per process, ``--repeats``
times each way, alternating: ``tools/dist_train.sh CONFIG K`` with
``local_cfg.parallel`` (K processes, one block each,
``parallel.timeline=True``) and ``tools/train.py`` (one process runs the
same K local blocks one after another: with ``parallel.balance='time'`` the
boundaries the parallel run chose, read from its plan cache, so both train
the same split). The speed-up is the median of the repeats' ratios. The
seconds per iteration are MMEngine's ``time`` (an iteration's wall clock,
data loading included) of rank 0, which trains the last block: in steady
state the pipeline's period. The first ``--warmup`` iterations are left
out. Each rank's timeline is summed up (busy / waiting for its peer /
receiving / waiting for a send) and, with ``--plot``, drawn for a few
steady-state iterations.

    python tools/analysis_tools/block_parallel_speed.py \\
        configs/mmpretrain/digits/resnet32_man++-k8_1xb64-coslr-10e_digits.py \\
        --blocks 2 --cfg-options train_cfg.max_epochs=3 \\
        optim_wrapper.local_cfg.parallel.balance=time \\
        --plot docs/figures/block_parallel_timeline_digits.png
"""
import argparse
import glob
import json
import os
import os.path as osp
import shutil
import statistics
import subprocess
import sys

from mmman.local.plan_cache import CACHE_FILE

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
COLORS = dict(busy='#2e7d32', wait='#bdbdbd', recv='#1565c0',
              send='#ef6c00')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('--blocks', type=int, default=2,
                        help='K: blocks = processes')
    parser.add_argument('--warmup', type=int, default=5)
    parser.add_argument('--work-dir', default='work_dirs/block_parallel_speed')
    parser.add_argument('--plot', help='PNG of the per-rank timeline')
    parser.add_argument('--window', type=int, default=4,
                        help='steady-state iterations drawn')
    parser.add_argument('--out', help='append the result (JSON line)')
    parser.add_argument('--repeats', type=int, default=3,
                        help='pairs of runs, alternating')
    parser.add_argument('--skip-sequential', action='store_true')
    parser.add_argument('--cfg-options', nargs='+', default=[],
                        metavar='KEY=VALUE')
    return parser.parse_args(argv)


def _run(cmd, env, log):
    with open(log, 'w') as f:
        done = subprocess.run(cmd, cwd=ROOT, env=env, stdout=f,
                              stderr=subprocess.STDOUT)
    if done.returncode:
        raise SystemExit(f'{" ".join(cmd)} failed; see {log}')


def _iter_times(work_dir: str, warmup: int) -> dict:
    """Mean ``time`` / ``data_time`` of the logged iterations after the
    warm-up, from MMEngine's ``vis_data/scalars.json``."""
    found = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data',
                                      'scalars.json')))
    if not found:
        raise SystemExit(f'no scalars.json under {work_dir}')
    rows = [json.loads(line) for line in open(found[-1])]
    rows = [r for r in rows if 'time' in r and 'loss' in r][warmup:]
    if not rows:
        raise SystemExit(f'{found[-1]}: no iteration after the warm-up')
    return dict(
        s_per_iter=statistics.mean(r['time'] for r in rows),
        data_s=statistics.mean(r['data_time'] for r in rows),
        iters=len(rows))


def _planned_boundaries(work_dir: str) -> list:
    """The time-balanced boundaries the parallel run cached, or []."""
    path = osp.join(work_dir, CACHE_FILE)
    if not osp.isfile(path):
        return []
    entries = [e for e in json.load(open(path)).values()
               if e.get('by') == 'time']
    if len(entries) != 1:
        raise SystemExit(f'{path}: expected one time-balanced plan, found '
                         f'{len(entries)}')
    return entries[0]['boundaries']


def _timelines(work_dir: str) -> list:
    return [json.load(open(p))
            for p in sorted(glob.glob(osp.join(work_dir, 'timeline',
                                               'rank*.json')))]


def _shares(timeline: dict, warmup: int) -> dict:
    """Seconds per iteration of each kind after the warm-up."""
    spans = timeline['spans']
    iters = [s for s in spans if s[0] == 'iter'][warmup:]
    if len(iters) < 2:
        return {}
    start, end = iters[0][1], iters[-1][2]
    n = len(iters)
    total = {k: 0.0 for k in ('wait', 'recv', 'send')}
    for kind, a, b in spans:
        if kind in total and a >= start and b <= end:
            total[kind] += b - a
    inside = sum(b - a for _, a, b in iters)
    shares = {k: v / n for k, v in total.items()}
    shares['busy'] = (inside - sum(total.values())) / n
    shares['outside step'] = (end - start - inside) / n  # data loading
    return shares


def plot_timeline(timelines: list, warmup: int, window: int,
                  path: str) -> None:
    """Bars per rank over ``window`` steady-state iterations of rank 0."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    ref = next(t for t in timelines if t['rank'] == 0)
    iters = [s for s in ref['spans'] if s[0] == 'iter']
    lo = iters[min(warmup, len(iters) - window)][1]
    hi = iters[min(warmup + window, len(iters)) - 1][2]
    fig, ax = plt.subplots(figsize=(10, 1.2 + 0.6 * len(timelines)))
    rows = sorted(timelines, key=lambda t: t['block'])
    for y, t in enumerate(rows):
        spans = [s for s in t['spans'] if s[2] > lo and s[1] < hi]
        for kind, a, b in spans:
            if kind == 'iter':
                ax.broken_barh([(a - lo, b - a)], (y - 0.35, 0.7),
                               color=COLORS['busy'])
        for kind, a, b in spans:
            if kind != 'iter':
                ax.broken_barh([(a - lo, b - a)], (y - 0.35, 0.7),
                               color=COLORS[kind])
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([f"block {t['block']} (rank {t['rank']})"
                        for t in rows])
    ax.set_xlim(0, hi - lo)
    ax.set_xlabel('seconds')
    handles = [plt.Rectangle((0, 0), 1, 1, color=COLORS[k])
               for k in ('busy', 'wait', 'recv', 'send')]
    handles.append(plt.Rectangle((0, 0), 1, 1, facecolor='white',
                                 edgecolor='black', linewidth=0.5))
    ax.legend(handles, ['busy (train step)', 'waiting for the peer',
                        'receiving', 'waiting for a send',
                        'outside the step (loading)'],
              loc='upper center', bbox_to_anchor=(0.5, -0.5), ncol=5,
              fontsize=7)
    fig.tight_layout()
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=120)


def main(argv=None):
    args = parse_args(argv)
    name = osp.splitext(osp.basename(args.config))[0]
    base = osp.join(args.work_dir, f'{name}_k{args.blocks}')
    env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')
    common = [
        f'optim_wrapper.local_cfg.num_blocks={args.blocks}',
        'default_hooks.logger.interval=1',
        'default_hooks.checkpoint.interval=1000000',
        'default_hooks.checkpoint.save_last=False',
        'train_cfg.val_interval=1000000', *args.cfg_options
    ]
    result = dict(config=args.config, blocks=args.blocks,
                  options=args.cfg_options, runs=[])
    os.makedirs(args.work_dir, exist_ok=True)
    seq, par = base + '_one_process', base + '_parallel'
    shutil.rmtree(par, ignore_errors=True)  # no plan cached by another run
    for _ in range(args.repeats):
        _run(['bash', 'tools/dist_train.sh', args.config, str(args.blocks),
              '--work-dir', par, '--cfg-options', *common,
              'optim_wrapper.local_cfg.parallel.type=blocks',
              'optim_wrapper.local_cfg.parallel.timeline=True'],
             dict(env, PORT=env.get('PORT', '29533')), par + '.log')
        run = dict(parallel=_iter_times(par, args.warmup))
        timelines = _timelines(par)
        run['ranks'] = {f"block {t['block']}": _shares(t, args.warmup)
                        for t in timelines}
        boundaries = _planned_boundaries(par)
        if boundaries:  # the same split in one process
            result['boundaries'] = boundaries
        if not args.skip_sequential:
            split = ([
                'optim_wrapper.local_cfg.num_blocks=None',
                f'optim_wrapper.local_cfg.boundaries=[{",".join(boundaries)}]'
            ] if boundaries else [])
            _run([sys.executable, 'tools/train.py', args.config,
                  '--work-dir', seq, '--cfg-options', *common, *split,
                  'optim_wrapper.local_cfg.parallel=None'], env,
                 seq + '.log')
            run['one_process'] = _iter_times(seq, args.warmup)
            run['speedup'] = (run['one_process']['s_per_iter'] /
                              run['parallel']['s_per_iter'])
        result['runs'].append(run)
    if not args.skip_sequential:
        result['speedup'] = statistics.median(
            r['speedup'] for r in result['runs'])
    if args.plot and timelines:
        plot_timeline(timelines, args.warmup, args.window, args.plot)
    print(json.dumps(result, indent=1))
    if args.out:
        with open(args.out, 'a') as f:
            f.write(json.dumps(result) + '\n')


if __name__ == '__main__':
    main()
