"""Memory and speed of training iterations, config against config.

For every config: build the model (random weights, nothing downloaded), run
``--iters`` training iterations on synthetic inputs of ``--img-scale``, and
report the peak bytes saved for backward, the peak memory of the process
(CPU: VmHWM) or ``torch.cuda.max_memory_allocated`` (GPU), the median seconds
per iteration, the floating-point operations of one iteration (forward,
backward and every recomputation, counted by ``torch.utils.flop_counter`` in
one more iteration after the timed ones: a device-independent floor for the
time ratios) and the ratios to the first config. The saved-tensor hooks add
microseconds per saved tensor: negligible next to an iteration.
Every iteration starts from the same random seed; ``--fixed-weights``
also holds the weights (learning rate 0, all the optimizer's work still
done), so every config computes the same proposals and samples the same
RoIs: a controlled comparison of step time where the cost of an op depends
on its data (RoIAlign's adaptive sampling on the proposals' sizes).
Each config runs in a fresh process, so one config's memory never inflates
the next one's peak.

    python tools/analysis_tools/benchmark_memory.py A.py B.py \\
        [--cfg-options k=v ...] [--iters 3] [--warmup 1] [--batch-size 2] \\
        [--img-scale 800 1333] [--out result.json] [--plot result.png]
"""
import argparse
import copy
import json
import os
import os.path as osp
import statistics
import subprocess
import sys
import tempfile
import time

import torch
from mmengine.config import DictAction
from torch.utils.flop_counter import FlopCounterMode
from tqdm import tqdm

MIB = 2**20


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('configs', nargs='+')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='overrides applied to every config')
    parser.add_argument('--iters', type=int, default=3,
                        help='measured iterations')
    parser.add_argument('--warmup', type=int, default=1,
                        help='unmeasured iterations first')
    parser.add_argument('--batch-size', type=int, default=2)
    parser.add_argument('--img-scale', type=int, nargs=2, default=[800, 1333],
                        metavar=('H', 'W'))
    parser.add_argument('--device', default=None,
                        help='cuda or cpu (default: cuda when available)')
    parser.add_argument('--out', help='result JSON')
    parser.add_argument('--plot', help='result bar plot (PNG)')
    parser.add_argument('--md', help='result table (markdown)')
    parser.add_argument('--fixed-weights', action='store_true',
                        help='learning rate 0: every config keeps the same '
                        'weights, proposals and sampled RoIs')
    parser.add_argument('--from-json', action='store_true',
                        help='CONFIGS is one result JSON: only re-render it')
    parser.add_argument('--single', help=argparse.SUPPRESS)  # child mode
    return parser.parse_args(argv)


def _tensor_bytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors
               if isinstance(t, torch.Tensor))


def phase_saved_bytes(model, wrapper, batch) -> dict:
    """Peak live saved-activation bytes per phase of one local train step:
    the stem, each backbone unit, ``('aux', k)`` (eta + head of block k,
    run while block k is still alive) and the tail (neck, heads, losses).
    Earlier blocks are freed before a block starts, so a block's peak over
    its own phases is what it alone costs."""
    from mmman.engine.budget_planner import aux_phase_growth
    return aux_phase_growth(model, wrapper, batch).peaks


def analytic_bound(model, wrapper, batch, measured_saved) -> dict:
    """Lower bounds of a local config: its largest block's own saved
    activations (auxiliary nets excluded; E2E: the measurement itself), and
    that plus parameters, gradients and optimizer state."""
    static = _tensor_bytes(p for p in model.parameters())
    static += _tensor_bytes(p for p in model.parameters() if p.requires_grad)
    aux = getattr(wrapper, 'aux', None)
    if aux is not None:
        params = list(aux.parameters())
        static += _tensor_bytes(params)
        static += _tensor_bytes(p for p in params if p.requires_grad)
    static += _tensor_bytes(
        t for state in wrapper.optimizer.state.values()
        for t in state.values())
    blocks, auxes, bound_saved = [], [], measured_saved
    if getattr(wrapper, 'local_enabled', False):
        plan = wrapper.plan
        phases = phase_saved_bytes(model, wrapper, batch)
        index = {u.name: i for i, u in enumerate(plan.units)}
        for k in range(plan.num_blocks):
            own = [index[u.name] for u in plan.block_units(k)]
            own += ['stem'] if k == 0 else []
            own += ['tail'] if k == plan.num_blocks - 1 else []
            blocks.append(max(phases.get(p, 0) for p in own))
            auxes.append(phases.get(('aux', k), 0))  # block k + its aux
        bound_saved = max(blocks)
    return dict(bound_saved_bytes=bound_saved, block_saved_bytes=blocks,
                aux_saved_bytes=auxes, static_bytes=static)


def _weights_checksum(model) -> float:
    """One number that any optimizer step on the model changes."""
    with torch.no_grad():
        return sum(p.double().sum().item() for p in model.parameters())


def measure(config, cfg_options, iters, warmup, batch_size, img_scale,
            device):
    """Measure one config in this process."""
    from mmman.utils import PeakMemory, SavedTensorsMeter, current_rss_bytes
    from mmman.tasks import synthetic_batch
    torch.manual_seed(0)
    baseline = current_rss_bytes() if device.type == 'cpu' else 0
    from mmman.apis import build_for_measurement
    model, wrapper = build_for_measurement(config, cfg_options, device,
                                           img_scale)
    batch = synthetic_batch(model, batch_size, tuple(img_scale))
    checksum = _weights_checksum(model)
    for i in range(warmup):
        torch.manual_seed(i)  # the same samplers' draws in every config
        model.train_step(copy.deepcopy(batch), wrapper)
    times, peaks, saved_peaks = [], [], []
    for i in tqdm(range(iters), desc=osp.basename(config), leave=False):
        torch.manual_seed(warmup + i)
        data = copy.deepcopy(batch)
        with PeakMemory(device) as peak, SavedTensorsMeter() as saved:
            start = time.perf_counter()
            model.train_step(data, wrapper)
            if device.type == 'cuda':
                torch.cuda.synchronize(device)
            times.append(time.perf_counter() - start)
        peaks.append(peak.peak_bytes)
        saved_peaks.append(saved.peak_bytes)
    weights_held = _weights_checksum(model) == checksum
    torch.manual_seed(warmup + iters)
    with FlopCounterMode(display=False) as flops:
        model.train_step(copy.deepcopy(batch), wrapper)
    name = (torch.cuda.get_device_name(device)
            if device.type == 'cuda' else f'cpu ({os.cpu_count()} cores)')
    bound = analytic_bound(model, wrapper, batch, max(saved_peaks))
    plan = getattr(wrapper, 'memory_plan', None)
    if plan is not None:  # local_cfg.memory_budget: its prediction
        bound['memory_plan'] = plan
        bound['budget_measured_bytes'] = (
            max(saved_peaks) + bound['static_bytes'] +
            _tensor_bytes(model.buffers()))
    bound['baseline_bytes'] = baseline
    bound['bound_memory_bytes'] = (
        baseline + bound['static_bytes'] + bound['bound_saved_bytes'])
    return dict(
        config=config,
        peak_saved_bytes=max(saved_peaks),
        peak_memory_bytes=max(peaks),
        sec_per_iter=statistics.median(times),
        flops=flops.get_total_flops(),
        weights_held=weights_held,
        device=name,
        **bound)


def _run_child(config, args):
    with tempfile.NamedTemporaryFile(suffix='.json', delete=False) as f:
        out = f.name
    cmd = [sys.executable, osp.abspath(__file__), config, '--single', out,
           '--iters', str(args.iters), '--warmup', str(args.warmup),
           '--batch-size', str(args.batch_size),
           '--img-scale', *map(str, args.img_scale)]
    if args.device:
        cmd += ['--device', args.device]
    options = dict(args.cfg_options or {})
    if args.fixed_weights:
        options['optim_wrapper.optimizer.lr'] = 0.0
    env = dict(os.environ, MMMAN_BENCH_OPTIONS=json.dumps(
        options))  # parsed values, types kept
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, env=env)
    if proc.returncode != 0:  # keep the other configs' results
        os.remove(out)
        print(f'FAILED: {config} (exit {proc.returncode}, see above)',
              file=sys.stderr)
        return None
    with open(out) as f:
        result = json.load(f)
    os.remove(out)
    return result


def table(results):
    first = results[0]
    rows = [('config', 'saved MiB', 'x', 'bound', 'process MiB', 'x',
             'bound', 's/iter', 'x', 'GFLOP', 'x')]
    for r in results:
        rows.append((osp.basename(r['config']),
                     f"{r['peak_saved_bytes'] / MIB:.0f}",
                     f"{r['saved_ratio']:.2f}",
                     f"{r['bound_saved_bytes'] / MIB:.0f}",
                     f"{r['peak_memory_bytes'] / MIB:.0f}",
                     f"{r['memory_ratio']:.2f}",
                     f"{r['bound_memory_bytes'] / MIB:.0f}",
                     f"{r['sec_per_iter']:.2f}", f"{r['time_ratio']:.2f}",
                     *_flops_cells(r)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ['  '.join(c.ljust(w) for c, w in zip(row, widths))
             for row in rows]
    lines.insert(1, '  '.join('-' * w for w in widths))
    return '\n'.join(lines) + f"\ndevice: {first['device']}"


def _flops_cells(r):
    if r.get('flops') is None:  # results of before the column
        return '-', '-'
    return f"{r['flops'] / 1e9:.0f}", f"{r['flops_ratio']:.2f}"


def markdown(results) -> str:
    """Markdown table: measurements, ratios to the first row, bounds."""
    lines = [
        '| config | saved MiB | x | bound MiB | process MiB | x | bound MiB '
        '| s/iter | x | GFLOP | x |',
        '|---|---|---|---|---|---|---|---|---|---|---|'
    ]
    for r in results:
        name = osp.splitext(osp.basename(r['config']))[0]
        lines.append(
            f"| {name} | {r['peak_saved_bytes'] / MIB:.0f} | "
            f"{r['saved_ratio']:.2f} | {r['bound_saved_bytes'] / MIB:.0f} | "
            f"{r['peak_memory_bytes'] / MIB:.0f} | {r['memory_ratio']:.2f} | "
            f"{r['bound_memory_bytes'] / MIB:.0f} | {r['sec_per_iter']:.1f} | "
            f"{r['time_ratio']:.2f} | {' | '.join(_flops_cells(r))} |")
    budgets = [r for r in results if r.get('memory_plan')]
    if budgets:
        lines += [
            '', '| memory_budget config | blocks (checkpointed) | predicted '
            'MiB | measured MiB (saved + static) | error |',
            '|---|---|---|---|---|'
        ]
    for r in budgets:
        plan, got = r['memory_plan'], r['budget_measured_bytes']
        name = osp.splitext(osp.basename(r['config']))[0]
        lines.append(
            f"| {name} | {plan['num_blocks']} ({plan['checkpoint'] or '-'}) "
            f"| {plan['predicted'] / MIB:.0f} | {got / MIB:.0f} | "
            f"{(plan['predicted'] - got) / got:+.1%} |")
    return '\n'.join(lines) + f"\n\ndevice: {results[0]['device']}\n"


def plot(results, path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    names = [osp.splitext(osp.basename(r['config']))[0] for r in results]
    fig, axes = plt.subplots(1, 3, figsize=(15, 0.45 * len(names) + 1.5))
    for ax, key, title in zip(axes,
                              ('saved_ratio', 'memory_ratio', 'time_ratio'),
                              ('peak saved activations', 'peak memory',
                               'time per iteration')):
        ax.barh(names, [r[key] for r in results])
        ax.axvline(1.0, color='k', lw=0.8)
        ax.set_title(f'{title} (x first)')
        ax.invert_yaxis()
    for ax in axes[1:]:
        ax.set_yticklabels([])
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main():
    args = parse_args()
    device = torch.device(
        args.device or ('cuda' if torch.cuda.is_available() else 'cpu'))
    if args.single:
        options = json.loads(os.environ.get('MMMAN_BENCH_OPTIONS', '{}'))
        result = measure(args.configs[0], options, args.iters, args.warmup,
                         args.batch_size, args.img_scale, device)
        with open(args.single, 'w') as f:
            json.dump(result, f)
        return
    if args.from_json:
        with open(args.configs[0]) as f:
            results = json.load(f)
    else:
        results = [
            _run_child(c, args) for c in tqdm(args.configs, desc='configs')
        ]
        failed = [c for c, r in zip(args.configs, results) if r is None]
        results = [r for r in results if r is not None]
        if not results:
            sys.exit('every config failed')
    first = results[0]
    for r in results:
        r['saved_ratio'] = r['peak_saved_bytes'] / first['peak_saved_bytes']
        r['memory_ratio'] = r['peak_memory_bytes'] / first['peak_memory_bytes']
        r['time_ratio'] = r['sec_per_iter'] / first['sec_per_iter']
        if r.get('flops') is not None and first.get('flops'):
            r['flops_ratio'] = r['flops'] / first['flops']
        else:
            r['flops'] = None
    print(table(results))
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(results, f, indent=2)
    if args.plot:
        plot(results, args.plot)
    if args.md:
        with open(args.md, 'w') as f:
            f.write(markdown(results))
    if not args.from_json and failed:
        sys.exit(f'failed: {failed}')


if __name__ == '__main__':
    main()
