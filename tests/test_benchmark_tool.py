"""tools/analysis_tools/benchmark_memory.py on tiny configs."""
import json
import os
import os.path as osp

import pytest
from helpers import run_python

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEMO = osp.join(ROOT, 'configs', 'demo')


def test_benchmark_tool_writes_table_json_and_plot(tmp_path):
    configs = [
        osp.join(DEMO, 'deeplabv3_r18-d8_e2e_300it_shapes-64x64.py'),
        osp.join(DEMO, 'deeplabv3_r18-d8_man++-k4_300it_shapes-64x64.py'),
    ]
    out, png = str(tmp_path / 'r.json'), str(tmp_path / 'r.png')
    proc = run_python(
        'tools/analysis_tools/benchmark_memory.py', *configs,
        '--img-scale', '64', '64', '--batch-size', '2', '--iters', '2',
        '--warmup', '0', '--out', out, '--plot', png, '--cfg-options',
        'model.decode_head.dropout_ratio=0.0',
        # balanced at --img-scale, as the shipped segmentation configs are
        'optim_wrapper.local_cfg.balance=True')
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'saved MiB' in proc.stdout and 'device: cpu' in proc.stdout
    with open(out) as f:
        results = json.load(f)
    assert [osp.basename(r['config']) for r in results] == [
        osp.basename(c) for c in configs]
    for r in results:
        assert {'config', 'peak_saved_bytes', 'peak_memory_bytes',
                'sec_per_iter', 'device'} <= set(r)
        assert r['peak_saved_bytes'] > 0 and r['peak_memory_bytes'] > 0
    assert results[0]['saved_ratio'] == 1.0
    # MAN++ computes eta and the heads on top of E2E's convolutions
    assert results[0]['flops'] > 0 and results[0]['flops_ratio'] == 1.0
    assert results[1]['flops'] > results[0]['flops']
    assert 'GFLOP' in proc.stdout
    assert results[1]['peak_saved_bytes'] < results[0]['peak_saved_bytes']
    assert osp.getsize(png) > 1000
    # Analytic bound: a local config's largest block alone, aux excluded.
    local = results[1]
    assert len(local['block_saved_bytes']) == 4
    assert local['bound_saved_bytes'] == max(local['block_saved_bytes'])
    assert local['bound_saved_bytes'] <= local['peak_saved_bytes']
    assert all(a >= b for a, b in zip(local['aux_saved_bytes'][:3],
                                      local['block_saved_bytes'][:3]))
    assert results[0]['bound_saved_bytes'] == results[0]['peak_saved_bytes']
    assert 0 < local['static_bytes'] < local['bound_memory_bytes']
    assert not any(r['weights_held'] for r in results)  # they trained


def test_benchmark_tool_fixed_weights_holds_every_parameter(tmp_path):
    """--fixed-weights: the steps run (and are timed) but no parameter
    moves, so every config sees the same proposals."""
    config = osp.join(DEMO, 'deeplabv3_r18-d8_man++-k4_300it_shapes-64x64.py')
    out = str(tmp_path / 'r.json')
    proc = run_python(
        'tools/analysis_tools/benchmark_memory.py', config, '--img-scale',
        '64', '64', '--iters', '1', '--warmup', '1', '--fixed-weights',
        '--out', out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(out) as f:
        result, = json.load(f)
    assert result['weights_held'] and result['sec_per_iter'] > 0


def test_compare_methods_table_pairs_seeds_and_measures_the_gap():
    tool = _compare_methods()
    results = dict(e2e=[0.5, 0.7], dgl=[0.3, 0.5], man=[0.4, 0.6])
    rows = tool.table(results, 'mAP', baseline='dgl', reference='e2e',
                      digits=4).splitlines()
    assert rows[0].endswith('share of the dgl → e2e gap closed |')
    man = rows[-1]
    assert '+0.1000, +0.1000 (mean +0.1000)' in man
    assert man.endswith('| 50% |')  # (0.5 - 0.4) of (0.6 - 0.4)
    rows = tool.table(dict(dgl=[1.0, 2.0, 3.0], man=[2.0, 4.0, 6.0]), 'x',
                      baseline='dgl').splitlines()
    # diffs 1, 2, 3: mean 2, standard error 1/sqrt(3)
    assert rows[-1].endswith(f'(mean +2.00, t +{2 * 3**0.5:.1f}) |')


def _compare_methods():
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        'compare_methods',
        osp.join(ROOT, 'tools', 'analysis_tools', 'compare_methods.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


def test_compare_methods_reads_finished_runs_and_redoes_unfinished(
        tmp_path, monkeypatch):
    tool = _compare_methods()
    calls = []

    def fake_train(cmd, env, **kwargs):
        calls.append((cmd, env['OMP_NUM_THREADS']))
        work = cmd[cmd.index('--work-dir') + 1]
        vis = osp.join(work, '20260101_000000', 'vis_data')
        os.makedirs(vis, exist_ok=True)
        with open(osp.join(vis, 'scalars.json'), 'w') as f:
            f.write(json.dumps({'acc': 0.5}) + '\n')
        return tool.subprocess.CompletedProcess(cmd, 0)

    monkeypatch.setattr(tool.subprocess, 'run', fake_train)
    work = str(tmp_path)
    # A run interrupted after logging (no .done stamp) is trained again ...
    vis = osp.join(work, 'man_seed0', '20250101_000000', 'vis_data')
    os.makedirs(vis)
    with open(osp.join(vis, 'scalars.json'), 'w') as f:
        f.write(json.dumps({'acc': 0.1}) + '\n')
    assert tool.run('cfg.py', 'man', ['k=v'], 0, work, 'acc', 1) == 0.5
    assert len(calls) == 1 and calls[0][1] == '1'
    assert 'randomness.seed=0' in calls[0][0] and 'k=v' in calls[0][0]
    # ... and a finished one is read, not redone.
    assert tool.run('cfg.py', 'man', ['k=v'], 0, work, 'acc', 1) == 0.5
    assert len(calls) == 1


def test_compare_methods_records_a_failed_run_and_goes_on(tmp_path,
                                                          monkeypatch):
    import subprocess
    tool = _compare_methods()
    calls = []

    def diverging(cmd, stdout, **kwargs):
        calls.append(cmd)
        stdout.write('Traceback (most recent call last):\n'
                     'NonFiniteLocalLossError: local loss of block 2 is '
                     'not finite at iteration 114\n')
        return subprocess.CompletedProcess(cmd, 1)

    monkeypatch.setattr(tool.subprocess, 'run', diverging)
    work = str(tmp_path)
    assert tool.run('cfg.py', 'man', [], 1, work, 'acc', 1) is None
    with open(osp.join(work, 'man_seed1', '.failed')) as f:
        assert 'exit 1: NonFiniteLocalLossError' in f.read()
    assert not osp.exists(osp.join(work, 'man_seed1', '.done'))
    # recorded: read again, not retrained, also with --no-train
    assert tool.run('cfg.py', 'man', [], 1, work, 'acc', 1, False) is None
    assert len(calls) == 1
    rows = tool.table(dict(dgl=[1.0, 2.0, 4.0], man=[2.0, None, 6.0]), 'x',
                      baseline='dgl', digits=1).splitlines()
    # mean and spread over the finished seeds; pairs only where both ran
    assert rows[-1] == ('| man | 4.0 ± 2.8 | 2.0, failed, 6.0 | '
                        '+1.0, –, +2.0 (mean +1.5, t +3.0) |')


def test_balance_cost_tool_reports_both_builds():
    config = osp.join(DEMO, 'deeplabv3_r18-d8_man++-k4_300it_shapes-64x64.py')
    proc = run_python('tools/analysis_tools/balance_cost.py', config,
                      '--device', 'cpu', '--cfg-options',
                      'optim_wrapper.local_cfg.balance.img_scale=[64,64]')
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'img_scale (64, 64), device cpu' in proc.stdout
    rows = [ln for ln in proc.stdout.splitlines()
            if ln.startswith(('| even |', '| balanced |'))]
    assert len(rows) == 2, proc.stdout
    # A config without balance says so instead of measuring.
    proc = run_python('tools/analysis_tools/balance_cost.py', config)
    assert proc.returncode != 0
    assert 'has no local_cfg.balance' in proc.stderr


def test_local_loss_trace_prints_every_block_and_names_a_divergence():
    config = osp.join(DEMO, 'faster-rcnn_r18_fpn_man++-k4_600it_coco-shapes-128.py')
    proc = run_python('tools/analysis_tools/local_loss_trace.py', config,
                      '--img-scale', '64', '64', '--steps', '2')
    assert proc.returncode == 0, proc.stderr[-3000:]
    for k in (1, 2, 3):
        assert f'  block {k}: loss_center_heatmap=' in proc.stdout
    assert 'step 2: model loss=' in proc.stdout and ', s=1.0' in proc.stdout
    # A learning rate that diverges at once: the trace says where it stops.
    proc = run_python('tools/analysis_tools/local_loss_trace.py', config,
                      '--img-scale', '64', '64', '--steps', '4',
                      '--cfg-options', 'optim_wrapper.optimizer.lr=1e12')
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'is not finite at iteration' in proc.stdout, proc.stdout[-2000:]


def test_step_time_phases_splits_the_step_at_every_block():
    config = osp.join(DEMO, 'deeplabv3_r18-d8_man++-k4_300it_shapes-64x64.py')
    proc = run_python('tools/analysis_tools/step_time_phases.py', config,
                      '--img-scale', '64', '64', '--iters', '1')
    assert proc.returncode == 0, proc.stderr[-3000:]
    (line, ) = [ln for ln in proc.stdout.splitlines()
                if ln.startswith('step 1:')]
    tags = [part.rsplit(' ', 1)[0] for part in line.split(' | ')[1:]]
    assert tags == ['preprocess + stem', 'block 1', 'aux 1', 'block 2',
                    'aux 2', 'block 3', 'aux 3', 'block 4', 'tail forward',
                    'tail backward', 'step'], line
    total = float(line.split(' | ')[0].split()[2])
    parts = [float(p.rsplit(' ', 1)[1]) for p in line.split(' | ')[1:]]
    # every number is printed to 0.01 s: each rounding is up to 0.005
    assert abs(total - sum(parts)) <= 0.005 * (len(parts) + 1) + 1e-9
    assert total > 0
    # an end-to-end config has no phases to time
    e2e = osp.join(DEMO, 'deeplabv3_r18-d8_e2e_300it_shapes-64x64.py')
    proc = run_python('tools/analysis_tools/step_time_phases.py', e2e,
                      '--img-scale', '64', '64', '--iters', '1')
    assert proc.returncode != 0 and 'end to end' in proc.stderr


def test_compare_methods_records_a_run_without_its_metric_as_failed(
        tmp_path):
    tool = _compare_methods()
    work = tmp_path / 'dgl_seed0'
    (work / '20261205_000000' / 'vis_data').mkdir(parents=True)
    (work / '20261205_000000' / 'vis_data' / 'scalars.json').write_text(
        json.dumps({'loss': 1.0, 'step': 600}) + '\n')
    (work / '.done').touch()  # trained, evaluated, but nothing detected
    args = ('cfg.py', 'dgl', [], 0, str(tmp_path), 'coco/bbox_mAP')
    assert tool.run(*args, train=False) is None
    assert 'never logged' in (work / '.failed').read_text()
    assert tool.run(*args, train=False) is None  # read back, not retrained


def test_dispatch_count_lists_a_local_steps_host_syncs():
    """A MAN++ K=4 detection step reads few values back to the host: the
    CenterNet targets of its three heads are batched (the host's loop read
    about 30 per box: 1440 for 2 images of 8 boxes)."""
    config = osp.join(DEMO, 'faster-rcnn_r18_fpn_man++-k4_600it_coco-shapes-128.py')
    proc = run_python('tools/analysis_tools/dispatch_count.py', config,
                      '--img-scale', '64', '64')
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(ln for ln in proc.stdout.splitlines() if 'host syncs' in ln)
    syncs = int(line.split(' ops, ')[1].split()[0])
    assert 0 < syncs < 100, line
    assert 'centernet_head' not in proc.stdout


def test_unit_costs_prices_eta_at_every_boundary(tmp_path):
    """Each unit's saved bytes and forward FLOPs, and MAN++'s eta before
    it: both branches forward and backward, plus the recomputation of both
    (``eta.recompute=True``): 2 more forwards than without."""
    config = osp.join(DEMO, 'faster-rcnn_r18_fpn_man++-k4_600it_coco-shapes-128.py')
    rows = {}
    for recompute in ('True', 'False'):
        out = tmp_path / f'{recompute}.json'
        proc = run_python('tools/analysis_tools/unit_costs.py', config,
                          '--img-scale', '64', '64', '--out', str(out),
                          '--cfg-options',
                          f'optim_wrapper.local_cfg.eta.recompute={recompute}')
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert '| backbone.layer4.1 |' in proc.stdout
        rows[recompute] = json.loads(out.read_text())
    found = rows['True']
    units = found['units']
    assert [u['unit'] for u in units][:2] == ['backbone.layer1.0',
                                             'backbone.layer1.1']
    assert units[0]['eta_flops'] is None  # no boundary before the first
    saved = sum(u['saved'] for u in units) + found['stem'] + found['tail']
    assert saved == pytest.approx(found['e2e_saved'])
    assert sum(u['forward_flops'] for u in units) < found['e2e_step_flops']
    for with_, without in zip(units[1:], rows['False']['units'][1:]):
        fwd = with_['forward_flops']
        assert 4 * fwd < without['eta_flops'] < 6 * fwd, with_['unit']
        assert with_['eta_flops'] - without['eta_flops'] == pytest.approx(
            2 * fwd, rel=0.05), with_['unit']


def test_budget_plans_lists_the_cheapest_plan_per_block_count(tmp_path):
    """Stage 1 frozen, as in the COCO configs: its output, an FPN input,
    counts with a last block that starts after block 1 (which frees it),
    never with the whole model as one block."""
    config = osp.join(DEMO, 'faster-rcnn_r18_fpn_man++-k4_600it_coco-shapes-128.py')
    out = tmp_path / 'plans.json'
    proc = run_python('tools/analysis_tools/budget_plans.py', config,
                      '--img-scale', '128', '128', '--saved', '8MiB',
                      '--out', str(out), '--cfg-options',
                      'model.backbone.frozen_stages=1')
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = json.loads(out.read_text())
    held = found['costs']['held_before']
    assert held[0] == 0 < held[1]
    rows = found['plans']
    assert rows and '| K | blocks start at |' in proc.stdout
    for row in rows:
        assert row['largest'] <= 8 * 2**20
        assert len(row['starts']) == row['num_blocks'] - 1
        if row['num_blocks'] > 1:  # eta at every boundary, measured
            assert row['extra_flops'] > 0
