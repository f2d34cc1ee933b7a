"""Train one config under several method variants and seeds; tabulate.

Each run is ``tools/train.py CONFIG --cfg-options <variant> randomness.seed=S``
in its own work dir; the last value of the metric in its ``scalars.json`` is
collected. Results go to a JSON file and a markdown table (mean ± std).

    python tools/analysis_tools/compare_methods.py CONFIG \\
        --variant e2e optim_wrapper.local_cfg.method=e2e \\
        --variant man++-k4 optim_wrapper.local_cfg.method=man++ \\
        --seeds 0 1 --metric mIoU --work-dir work_dirs/compare \\
        --out docs/results_seg.json

``--jobs N`` runs N trainings at once, each on ``cpu_count // N`` threads.
Finished runs (a ``.done`` stamp in their work dir, written after training
succeeded) are read, not redone, so an interrupted comparison resumes. A
training that fails (e.g. mmman stops a diverged run on a non-finite local
loss) is recorded as failed in a ``.failed`` stamp with its error line and
shown as such; so is a finished training whose log never reports the
metric (a detector that detects nothing gets no bbox mAP from MMDet). The
other runs go on, and statistics use the seeds that finished. Remove the
work dir to train it again.

``--baseline NAME`` adds each variant's difference to that variant on the
same seed, with its paired t statistic (|t| > 2.78 is p < 0.05, two-sided,
for 5 seeds); with ``--reference NAME`` too (e.g. E2E), the share of the
baseline-to-reference gap each variant closes.
"""
import argparse
import glob
import json
import os
import os.path as osp
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Optional

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument(
        '--variant',
        nargs='+',
        action='append',
        required=True,
        metavar=('NAME', 'KEY=VALUE'),
        help='a variant name followed by its --cfg-options')
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1])
    parser.add_argument('--metric', default='mIoU')
    parser.add_argument('--work-dir', default='work_dirs/compare')
    parser.add_argument('--out', required=True, help='results JSON')
    parser.add_argument('--error', action='store_true',
                        help='tabulate 100 - metric (accuracy %% as error %%)')
    parser.add_argument('--no-train', action='store_true',
                        help='tabulate finished runs only; train nothing')
    parser.add_argument('--jobs', type=int, default=1,
                        help='trainings run at once')
    parser.add_argument('--digits', type=int, default=2,
                        help='decimals in the table')
    parser.add_argument('--baseline', help='variant for paired differences')
    parser.add_argument('--reference', help='variant whose gap to the '
                        'baseline is measured (needs --baseline)')
    return parser.parse_args()


class MetricMissingError(RuntimeError):
    """A finished training whose log never reports the metric."""


def last_metric(work_dir: str, metric: str) -> float:
    files = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data',
                                      'scalars.json')))
    if not files:
        raise RuntimeError(f'no scalars.json under {work_dir}')
    value = None
    with open(files[-1]) as f:
        for line in f:
            record = json.loads(line)
            if metric in record:
                value = record[metric]
    if value is None:
        raise MetricMissingError(f'{metric} never logged in {files[-1]} '
                                 '(MMDet logs no bbox mAP when the model '
                                 'detects nothing)')
    return float(value)


def error_line(log_file: str) -> str:
    """The last line of a failed training's log that names an error."""
    with open(log_file) as f:
        lines = [ln.strip() for ln in f if 'Error' in ln]
    return lines[-1] if lines else 'training failed (no error line logged)'


def run(config, name, options, seed, work_root, metric, threads=None,
        train=True):
    """Train one variant and seed unless its work dir is stamped done;
    None if the training failed (now or before)."""
    work_dir = osp.join(work_root, f'{name}_seed{seed}')
    stamp = osp.join(work_dir, '.done')
    failed = osp.join(work_dir, '.failed')
    if osp.exists(failed):
        with open(failed) as f:
            print(f'{work_dir}: failed: {f.read().strip()}', flush=True)
        return None
    if not osp.exists(stamp) and not train:
        raise SystemExit(f'error: {work_dir} has not finished (--no-train)')
    if not osp.exists(stamp):
        cmd = [
            sys.executable,
            osp.join(ROOT, 'tools', 'train.py'), config, '--work-dir',
            work_dir, '--cfg-options', f'randomness.seed={seed}', *options
        ]
        print(' '.join(cmd), flush=True)
        env = dict(os.environ)
        if threads:
            env['OMP_NUM_THREADS'] = str(threads)
        os.makedirs(work_dir, exist_ok=True)
        log_file = osp.join(work_dir, 'train.log')
        with open(log_file, 'w') as log:
            code = subprocess.run(cmd, cwd=ROOT, env=env, stdout=log,
                                  stderr=subprocess.STDOUT).returncode
        if code != 0:
            message = f'exit {code}: {error_line(log_file)}'
            with open(failed, 'w') as f:
                f.write(message + '\n')
            print(f'{work_dir}: failed: {message}', flush=True)
            return None
        open(stamp, 'w').close()
    try:
        return last_metric(work_dir, metric)
    except MetricMissingError as err:  # e.g. a detector that found nothing
        with open(failed, 'w') as f:
            f.write(f'finished, but {err}\n')
        print(f'{work_dir}: failed: finished, but {err}', flush=True)
        return None


def paired_t(diffs) -> str:
    """``, t +2.1``: the paired t statistic (mean / standard error) of
    per-seed differences; empty when it is undefined."""
    if len(diffs) < 2:
        return ''
    mean, std = statistics.mean(diffs), statistics.stdev(diffs)
    if std <= 1e-9 * max(1.0, abs(mean)):  # equal differences (rounding)
        return ''
    t = mean / (std / len(diffs)**0.5)
    return f', t {t:+.1f}'


def table(results: dict,
          metric: str,
          baseline: Optional[str] = None,
          reference: Optional[str] = None,
          digits: int = 2) -> str:
    """Markdown table; a None value is a failed run: means, spreads and
    paired differences use the seeds where the runs finished."""
    head = f'| variant | {metric} mean ± std | runs |'
    if baseline:
        head += f' vs {baseline}, same seed |'
    if baseline and reference:
        head += f' share of the {baseline} → {reference} gap closed |'
    lines = [head, '|' + '---|' * (head.count('|') - 1)]
    done = {n: [v for v in vs if v is not None] for n, vs in results.items()}
    mean = {n: statistics.mean(vs) if vs else float('nan')
            for n, vs in done.items()}
    for name, values in results.items():
        std = statistics.stdev(done[name]) if len(done[name]) > 1 else 0.0
        row = (f'| {name} | {mean[name]:.{digits}f} ± {std:.{digits}f} | ' +
               ', '.join('failed' if v is None else f'{v:.{digits}f}'
                         for v in values) + ' |')
        if baseline:
            pairs = list(zip(values, results[baseline]))
            diffs = [v - b for v, b in pairs
                     if v is not None and b is not None]
            cells = ['–' if v is None or b is None else f'{v - b:+.{digits}f}'
                     for v, b in pairs]
            row += (' – |' if name == baseline else
                    ' – |' if not diffs else
                    ' ' + ', '.join(cells) +
                    f' (mean {statistics.mean(diffs):+.{digits}f}'
                    f'{paired_t(diffs)}) |')
        if baseline and reference:
            gap = mean[reference] - mean[baseline]
            row += (f' {(mean[name] - mean[baseline]) / gap:.0%} |'
                    if gap and name not in (baseline, reference) else ' – |')
        lines.append(row)
    return '\n'.join(lines)


def main():
    args = parse_args()
    names = [name for name, *_ in args.variant]
    for name in (args.baseline, args.reference):
        if name and name not in names:
            raise SystemExit(f'error: no variant named {name!r}')
    if args.reference and not args.baseline:
        raise SystemExit('error: --reference needs --baseline')
    threads = max(1, (os.cpu_count() or 1) // args.jobs)
    with ThreadPoolExecutor(args.jobs) as pool:
        futures = {(name, seed): pool.submit(run, args.config, name, options,
                                             seed, args.work_dir, args.metric,
                                             threads, not args.no_train)
                   for name, *options in args.variant for seed in args.seeds}
        results = {}
        for name, *_ in args.variant:
            results[name] = [futures[name, s].result() for s in args.seeds]
            print(f'{name}: {results[name]}', flush=True)
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    with open(args.out, 'w') as f:
        json.dump(
            dict(config=args.config, seeds=args.seeds, metric=args.metric,
                 variants={name: opts for name, *opts in args.variant},
                 results=results), f, indent=2)
    metric = args.metric
    if args.error:
        results = {n: [None if v is None else 100.0 - v for v in vs]
                   for n, vs in results.items()}
        metric = f'error (100 - {metric})'
    print(table(results, metric, args.baseline, args.reference,
                args.digits))


if __name__ == '__main__':
    main()
