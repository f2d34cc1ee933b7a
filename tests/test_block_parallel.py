"""Block-parallel training (issue 23): K blocks on K gloo processes train the
same weights as one process, resume exactly, and refuse what cannot run.

Each run is ``tools/dist_train.sh`` / ``tools/train.py`` as a user runs them
(torchrun gives every process one thread; the one-process reference is run
with one thread too, so that every reduction runs in the same order and the
comparison can be bitwise)."""
import os
import os.path as osp
import re
import subprocess
import sys
import time

import pytest
import torch

from helpers import ROOT, build, free_port
from mmman.datasets import make_shapes_classification
from mmman.utils.checkpoint import load_local_checkpoint

CONFIG = osp.join(ROOT, 'configs', 'demo',
                  'resnet20_man++-k4_1xb64-600it_shapes-cls-32x32.py')


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    return make_shapes_classification(
        str(tmp_path_factory.mktemp('shapes_cls')), num_train=48, num_val=10,
        size=16)


def _options(data_root, method, num_blocks, iters=4, save=2):
    return [
        f'train_cfg.max_iters={iters}', f'train_cfg.val_interval={iters}',
        f'default_hooks.checkpoint.interval={save}',
        'default_hooks.logger.interval=1', 'param_scheduler.0.end=2',
        f'param_scheduler.1.T_max={iters}', f'param_scheduler.1.end={iters}',
        'train_dataloader.batch_size=8',
        f'optim_wrapper.local_cfg.method={method}',
        f'optim_wrapper.local_cfg.num_blocks={num_blocks}',
        *(f'{loader}.dataset.data_root={data_root}'
          for loader in ('train_dataloader', 'val_dataloader',
                         'test_dataloader'))
    ]


def _env():
    env = dict(os.environ, PORT=str(free_port()), OMP_NUM_THREADS='1')
    if not osp.exists(osp.join(ROOT, '.venv', 'bin', 'python')):
        env['PYTHON'] = sys.executable
    return env


def _parallel(work, nproc, options, *extra, config=CONFIG):
    out = subprocess.run(
        ['bash', 'tools/dist_train.sh', config, str(nproc), '--work-dir',
         work, *extra, '--cfg-options', *options,
         'optim_wrapper.local_cfg.parallel.type=blocks'],
        cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300)
    return out.returncode, out.stdout + out.stderr


def _sequential(work, options, config=CONFIG):
    out = subprocess.run(
        [sys.executable, 'tools/train.py', config, '--work-dir', work,
         '--cfg-options', *options],
        cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]


def _load(path):
    return load_local_checkpoint(path, map_location='cpu')


def _assert_same_weights(a, b):
    assert a.keys() == b.keys()
    differ = [k for k in a if not torch.equal(a[k], b[k])]
    assert not differ, differ[:5]


def test_dgl_two_processes_train_the_sequential_weights_and_resume(
        tmp_path, data):
    options = _options(data, 'dgl', 2)
    _sequential(str(tmp_path / 'seq'), options)
    rc, log = _parallel(str(tmp_path / 'par'), 2, options)
    assert rc == 0, log[-4000:]
    # rank 0 (the last block) logs the model loss and block 1's local loss
    assert 'local1_loss_cls' in log and 'accuracy/top1' in log
    seq = _load(str(tmp_path / 'seq' / 'iter_4.pth'))
    par = _load(str(tmp_path / 'par' / 'iter_4.pth'))
    _assert_same_weights(seq['state_dict'], par['state_dict'])
    assert len(par['optimizer']['mmman_stages']) == 2
    # a plain host checkpoint: its weights load strictly into the model
    from mmengine.config import Config
    model = build('mmpretrain', Config.fromfile(CONFIG).model)
    model.load_state_dict(par['state_dict'], strict=True)
    # while it trained, block 2's process held block 2 and the head only
    held = re.search(r"block 2's process holds (\d+) of the model's (\d+) "
                     'parameter elements', log)
    assert held, log[-3000:]
    total = sum(p.numel() for p in model.parameters())
    assert int(held[2]) == total and 0 < int(held[1]) < total
    assert total - int(held[1]) >= sum(
        p.numel() for p in model.backbone.layer1.parameters())

    # resume at iteration 2: the same weights at iteration 4
    resumed = tmp_path / 'resumed'
    resumed.mkdir()
    rc, log = _parallel(str(resumed), 2, options, '--resume',
                        str(tmp_path / 'par' / 'iter_2.pth'))
    assert rc == 0, log[-4000:]
    assert 'resumed' in log.lower()
    _assert_same_weights(par['state_dict'],
                         _load(str(resumed / 'iter_4.pth'))['state_dict'])


def test_man_two_processes_equal_one_process_with_the_same_ema_delay(
        tmp_path, data):
    """eta'' follows block 2's first unit one step late in both runs."""
    options = _options(data, 'man++', 2, save=4)
    _sequential(str(tmp_path / 'seq'),
                options + ['optim_wrapper.local_cfg.eta.ema_delay=1'])
    rc, log = _parallel(str(tmp_path / 'par'), 2, options)
    assert rc == 0, log[-4000:]
    assert 'eta.ema_delay=1' in log
    seq = _load(str(tmp_path / 'seq' / 'iter_4.pth'))
    par = _load(str(tmp_path / 'par' / 'iter_4.pth'))
    _assert_same_weights(seq['state_dict'], par['state_dict'])
    aux_seq = seq['optimizer']['mmman_local']
    aux_par = par['optimizer']['mmman_stages'][0]['mmman_local']
    queue = 'blocks.0.eta.delayed._extra_state'
    for key, value in aux_seq.items():  # eta', eta'', balance, head
        if key != queue:
            assert torch.equal(value, aux_par[key]), key
    assert len(aux_seq[queue]) == 1
    for a, b in zip(aux_seq[queue][0], aux_par[queue][0]):
        assert torch.equal(a, b)


def test_dgl_four_processes_train_the_sequential_weights(tmp_path, data):
    options = _options(data, 'dgl', 4, iters=3, save=3)
    _sequential(str(tmp_path / 'seq'), options)
    rc, log = _parallel(str(tmp_path / 'par'), 4, options)
    assert rc == 0, log[-4000:]
    assert 'local3_loss_cls' in log  # blocks 1-3's losses reach rank 0
    _assert_same_weights(
        _load(str(tmp_path / 'seq' / 'iter_3.pth'))['state_dict'],
        _load(str(tmp_path / 'par' / 'iter_3.pth'))['state_dict'])


def test_detection_fpn_inputs_cross_from_block_1_to_the_last(tmp_path):
    """Faster R-CNN's FPN reads layer1 and layer2, trained on block 1's
    process: their outputs travel with the activations (real tensors)."""
    from mmman.datasets import make_coco_shapes
    root = make_coco_shapes(str(tmp_path / 'coco'), num_train=8, num_val=2,
                            size=64) + '/'
    config = osp.join(ROOT, 'configs', 'demo',
                      'faster-rcnn_r18_fpn_man++-k4_600it_coco-shapes-128.py')
    options = [
        'train_cfg.max_iters=2', 'train_cfg.val_interval=100',
        'default_hooks.checkpoint.interval=2', 'train_dataloader.batch_size=2',
        'optim_wrapper.local_cfg.num_blocks=2',
        'optim_wrapper.local_cfg.method=dgl',
        f'train_dataloader.dataset.data_root={root}',
        f'val_dataloader.dataset.data_root={root}',
        f'test_dataloader.dataset.data_root={root}',
        f'val_evaluator.ann_file={root}annotations/instances_val2017.json',
        f'test_evaluator.ann_file={root}annotations/instances_val2017.json'
    ]
    _sequential(str(tmp_path / 'seq'), options, config=config)
    rc, log = _parallel(str(tmp_path / 'par'), 2, options, config=config)
    assert rc == 0, log[-4000:]
    _assert_same_weights(
        _load(str(tmp_path / 'seq' / 'iter_2.pth'))['state_dict'],
        _load(str(tmp_path / 'par' / 'iter_2.pth'))['state_dict'])


def test_a_world_size_that_is_not_k_stops_with_one_message(tmp_path, data):
    rc, log = _parallel(str(tmp_path / 'par'), 2,
                        _options(data, 'dgl', 3, iters=1, save=1))
    assert rc != 0
    assert '3 blocks need 3 processes' in log
    assert 'tools/dist_train.sh CONFIG 3' in log
    # one process (tools/train.py): the same message
    out = subprocess.run(
        [sys.executable, 'tools/train.py', CONFIG, '--work-dir',
         str(tmp_path / 'one'), '--cfg-options',
         *_options(data, 'dgl', 2, iters=1, save=1),
         'optim_wrapper.local_cfg.parallel.type=blocks'],
        cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300)
    assert out.returncode != 0
    assert '2 blocks need 2 processes' in out.stderr + out.stdout


@pytest.mark.parametrize('method, extra, message', [
    ('mlaan', {}, 'MLAAN cannot be pipelined'),
    ('e2e', {}, "method='e2e' has none"),
    ('man++', dict(memory_budget='1GiB'), 'the budget plans blocks'),
    ('man++', dict(parallel=dict(type='blocks', depth=0)), 'depth'),
    ('man++', dict(parallel=dict(type='stages')), "type='blocks'"),
])
def test_configs_that_cannot_run_block_parallel_are_refused(
        method, extra, message):
    from mmman.engine import LocalOptimWrapperConstructor
    from mmman.engine.block_parallel import BlockParallelError
    local_cfg = dict(method=method, num_blocks=2,
                     parallel=dict(type='blocks'))
    local_cfg.update(extra)
    with pytest.raises(BlockParallelError, match=message):
        LocalOptimWrapperConstructor(
            dict(optimizer=dict(type='SGD', lr=0.1), local_cfg=local_cfg))


def test_the_runner_settings_of_a_block_parallel_config(monkeypatch):
    from mmengine.config import Config
    from mmman.apis import configure_block_parallel
    from mmman.engine.block_parallel import BlockParallelError
    cfg = Config.fromfile(CONFIG)
    cfg.optim_wrapper.local_cfg.parallel = dict(type='blocks')
    cfg.launcher = 'none'  # e.g. tools/test.py: a plain model
    assert not configure_block_parallel(cfg)
    assert cfg.get('model_wrapper_cfg') is None
    cfg.launcher = 'pytorch'
    assert configure_block_parallel(cfg)
    assert cfg.model_wrapper_cfg.type == 'BlockParallelModel'
    # every process reads the same batches
    assert cfg.train_dataloader.sampler.type == 'BlockParallelInfiniteSampler'
    assert cfg.train_dataloader.sampler.shuffle
    assert cfg.train_dataloader.dataset.type == 'CustomDataset'  # rank 1
    monkeypatch.setenv('RANK', '0')  # the last block's process loads nothing
    cfg = Config.fromfile(CONFIG)
    cfg.optim_wrapper.local_cfg.parallel = dict(type='blocks')
    cfg.launcher = 'pytorch'
    configure_block_parallel(cfg)
    source = cfg.train_dataloader.dataset
    assert source.type == 'BlockParallelBatchSource'
    assert source.dataset.type == 'CustomDataset'
    assert 'loader' not in cfg.optim_wrapper.local_cfg.parallel
    cfg = Config.fromfile(CONFIG)  # the time balance times block 1's loading
    cfg.optim_wrapper.local_cfg.parallel = dict(type='blocks', balance='time')
    cfg.launcher = 'pytorch'
    configure_block_parallel(cfg)
    loader = cfg.optim_wrapper.local_cfg.parallel.loader
    assert loader.dataset.type == 'CustomDataset'
    assert cfg.train_dataloader.dataset.type == 'BlockParallelBatchSource'
    cfg.train_dataloader.sampler = dict(type='RepeatAugSampler')
    with pytest.raises(BlockParallelError, match='RepeatAugSampler'):
        configure_block_parallel(cfg)
    cfg = Config.fromfile(CONFIG)  # an EMA of every parameter: not here
    cfg.optim_wrapper.local_cfg.parallel = dict(type='blocks')
    cfg.launcher = 'pytorch'
    cfg.custom_hooks = [dict(type='mmdet.EMAHook', momentum=2e-4)]
    with pytest.raises(BlockParallelError, match='EMAHook'):
        configure_block_parallel(cfg)


def test_the_unsplit_samplers_give_every_rank_one_process_order(monkeypatch):
    import mmengine.dataset.sampler as sampler_module
    from mmengine.dataset import DefaultSampler
    from mmman.engine.block_parallel import BlockParallelSampler
    data = list(range(10))
    single = list(DefaultSampler(data, shuffle=True, seed=3))
    monkeypatch.setattr(sampler_module, 'get_dist_info', lambda: (1, 2))
    assert len(list(DefaultSampler(data, shuffle=True, seed=3))) == 5
    assert list(BlockParallelSampler(data, shuffle=True, seed=3)) == single


def test_refine_ends_moves_units_away_from_the_slowest_block():
    from mmman.engine.time_balance import refine_ends
    unit = [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    calls = []

    def measure(ends):  # block cost: its units, plus 2.5 at a boundary
        calls.append(list(ends))
        starts = [0] + [e + 1 for e in ends]
        stops = [e + 1 for e in ends] + [len(unit)]
        return [sum(unit[a:b]) + (2.5 if b < len(unit) else 0.0)
                for a, b in zip(starts, stops)]

    ends, times = refine_ends([4], len(unit), measure, budget=6)
    assert ends == [2] and times == [5.5, 5.0]  # from [7.5, 3.0]
    assert len(calls) <= 7
    ends, _ = refine_ends([4], len(unit), measure, budget=1)
    assert ends == [3]  # one measurement allowed: one step


def test_time_balanced_ends_weigh_the_auxiliary_phase_and_the_tail():
    from mmman.engine.time_balance import time_balanced_ends
    times = dict(pre=0.0, forward=[1.0] * 6, step=[0.0] * 6,
                 aux=[0.0, 0.0, 9.0, 0.0, 0.0], tail=0.0)
    # 3 s per unit (forward and twice that backward): 3 | 3 units would
    # be best, but a boundary after unit 2 costs 9 more
    ends, seconds = time_balanced_ends(times, 2)
    assert ends in ([1], [3]) and max(seconds) == pytest.approx(12.0)
    times['tail'] = 6.0  # a heavy tail: the last block takes fewer units
    ends, seconds = time_balanced_ends(times, 2)
    assert ends == [3] and seconds == pytest.approx([12.0, 12.0])
    times.update(tail=0.0, aux=[0.0] * 5, load=6.0)  # block 1 also loads
    ends, seconds = time_balanced_ends(times, 2)
    assert ends == [1] and seconds == pytest.approx([12.0, 12.0])


def test_loading_is_timed_per_batch_of_the_run():
    """What block 1's process adds: ``batch_size`` samples read and
    collated per batch (median of the batches after a warm-up)."""
    from mmman.engine.time_balance import measure_loading
    read = []

    class Slow:
        def __len__(self):
            return 5

        def __getitem__(self, i):
            read.append(i)
            time.sleep(0.004)
            return dict(inputs=torch.zeros(1))

    seconds = measure_loading(dict(dataset=Slow()), batch_size=3, batches=2)
    assert read == [0, 1, 2, 3, 4, 0, 1, 2, 3]  # warm-up + 2 batches of 3
    assert 3 * 0.004 <= seconds < 1.0


def test_the_time_plan_is_measured_once_and_cached(tmp_path, monkeypatch):
    from mmengine.config import Config
    from mmman.engine import LocalOptimWrapperConstructor, time_balance
    from mmman.local.plan_cache import CACHE_FILE
    model = build('mmpretrain', Config.fromfile(CONFIG).model)
    parallel = dict(type='blocks', balance='time', img_scale=(16, 16),
                    batch_size=4, cache_dir=str(tmp_path))

    def time_plan():
        return LocalOptimWrapperConstructor(
            dict(optimizer=dict(type='SGD', lr=0.1),
                 local_cfg=dict(method='man++', num_blocks=3,
                                parallel=parallel)))._time_plan(model)

    before = {k: v.clone() for k, v in model.state_dict().items()}
    cfg = time_plan()
    assert cfg['num_blocks'] is None and len(cfg['boundaries']) == 2
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key  # a copy was timed
    assert osp.isfile(osp.join(tmp_path, CACHE_FILE))

    def measure_again(*args, **kwargs):
        raise AssertionError('the cached plan was measured again')

    monkeypatch.setattr(time_balance, 'measure_unit_times', measure_again)
    assert time_plan()['boundaries'] == cfg['boundaries']  # e.g. --resume


def test_a_message_skeleton_takes_data_samples_apart_and_back():
    """The batch travels with block 1's output: data samples are rebuilt
    with their classes, meta information and tensors (sent as buffers)."""
    import pickle
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData
    from mmman.engine.block_parallel import TensorMeta, _pack, _rebuild, _Slot
    sample = DetDataSample(metainfo=dict(img_shape=(64, 48)))
    sample.gt_instances = InstanceData(
        metainfo=dict(note='x'), bboxes=torch.rand(3, 4),
        labels=torch.tensor([1, 2, 0]))
    sent = []

    def slot(t):
        sent.append(t)
        return _Slot(0, len(sent) - 1, TensorMeta.of(t))

    tree = pickle.loads(pickle.dumps(_pack(
        dict(inputs=torch.zeros(1, 3, 4, 4), data_samples=[sample]), slot)))
    assert len(sent) == 3  # inputs, bboxes, labels: none pickled
    back = _rebuild(tree, lambda s: sent[s.offset])
    got = back['data_samples'][0]
    assert type(got) is DetDataSample and got.img_shape == (64, 48)
    assert type(got.gt_instances) is InstanceData
    assert got.gt_instances.note == 'x'
    assert torch.equal(got.gt_instances.bboxes, sample.gt_instances.bboxes)
    assert torch.equal(got.gt_instances.labels, sample.gt_instances.labels)


def _channel_messages():
    """Messages exercising each path of the channel: the first (NEW), the
    same layout with the same and with another skeleton (FIT), a smaller
    batch (FIT in the posted room), a larger one, a new dtype and a long
    skeleton (NEW: a filler, then their own sizes)."""
    g = torch.Generator().manual_seed(0)
    x = lambda *s: torch.rand(*s, generator=g)  # noqa: E731
    return [
        dict(a=x(4, 8), meta='first'),
        dict(a=x(4, 8), meta='first'),
        dict(a=x(4, 8), meta='another skeleton'),
        dict(a=x(2, 8), meta='a smaller batch'),
        dict(a=x(6, 8), meta='a larger one'),
        dict(a=x(6, 8), b=torch.arange(5), meta='a new dtype'),
        dict(a=x(6, 8), b=torch.arange(5), meta='x' * 9000),
        dict(a=x(3, 8), b=torch.arange(2), meta='fits again'),
    ]


def _channel_worker(rank, port, path):
    import torch.distributed as dist
    from mmman.engine.block_parallel import P2PChannel, StageClock
    dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}',
                            rank=rank, world_size=2)
    channel = P2PChannel(1 - rank, 1, torch.device('cpu'), 2, StageClock())
    messages = _channel_messages()
    if rank == 0:
        parts, isend = [], dist.isend

        def counted(*args, **kwargs):
            parts[-1] += 1
            return isend(*args, **kwargs)

        dist.isend = counted
        for message in messages:
            parts.append(0)
            channel.send(message)
        channel.flush()
        torch.save(parts, path + '.parts')
    else:
        got = []
        for i in range(len(messages)):
            message = channel.recv(ahead=i + 1 < len(messages))
            got.append((message, channel._layout))
        torch.save(got, path)
    dist.barrier()
    dist.destroy_process_group()


def test_the_channel_posts_receives_ahead_and_delivers_every_message(
        tmp_path):
    """Each message arrives whole, whatever fits the receives posted
    ahead; the posted room only grows (a smaller batch fits it)."""
    import torch.multiprocessing as mp
    from mmman.engine.block_parallel import _Layout
    path = str(tmp_path / 'received.pt')
    mp.start_processes(_channel_worker, args=(free_port(), path), nprocs=2,
                       start_method='spawn')
    got = torch.load(path, weights_only=False)
    # header, skeleton, buffers; a NEW message after the first also fills
    # the receives posted for it (skeleton and buffers) with nothing
    assert torch.load(path + '.parts') == [3, 3, 3, 3, 5, 6, 7, 4]
    sent = _channel_messages()
    for (message, _), expected in zip(got, sent):
        assert message.keys() == expected.keys()
        assert message['meta'] == expected['meta']
        for key in set(expected) - {'meta'}:
            assert torch.equal(message[key], expected[key])
    layouts = [layout for _, layout in got]
    grew = [i for i in range(1, len(layouts))
            if layouts[i] != layouts[i - 1]]
    assert grew == [4, 5, 6]  # larger, new dtype, long skeleton
    assert layouts[-1].buckets == ((torch.float32, 48), (torch.int64, 5))
    assert layouts[-1].skeleton >= 9000
    assert isinstance(layouts[0], _Layout)


def test_each_process_frees_what_its_block_never_runs():
    """Block 1's process frees block 2's units and the head; block 2's
    frees block 1's units; both keep the stem (it runs before the first
    unit) and their own block."""
    from mmman.engine import LocalOptimWrapperConstructor
    from mmman.engine.block_parallel import BlockPipeline
    model = build('mmpretrain', dict(
        type='ImageClassifier', backbone=dict(type='ResNet', depth=18),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=10, in_channels=512)))
    wrapper = LocalOptimWrapperConstructor(dict(
        optimizer=dict(type='SGD', lr=0.1),
        local_cfg=dict(method='dgl', num_blocks=2)))(model)
    plan = wrapper.plan
    names = {id(t): n for n, t in list(model.named_parameters()) +
             list(model.named_buffers())}
    first = {names[id(t)] for u in plan.block_units(0)
             for t in u.module.parameters()}
    second = {names[id(t)] for u in plan.block_units(1)
              for t in u.module.parameters()}
    shapes = {n: p.shape for n, p in model.named_parameters()}
    for stage, own, other in ((0, first, second), (1, second, first)):
        pipeline = BlockPipeline(plan, wrapper.aux, model, stage)
        freed = {names[id(t)] for t in pipeline.unused_tensors()}
        assert other <= freed and not own & freed
        assert 'backbone.conv1.weight' not in freed  # the stem
        assert ('head.fc.weight' in freed) == (stage == 0)
        pipeline.release_unused()
        for n, p in model.named_parameters():
            assert p.numel() == (0 if n in freed else shapes[n].numel()), n
        pipeline.hold_all()
        assert all(p.shape == shapes[n] for n, p in model.named_parameters())
