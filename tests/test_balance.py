"""Memory-balanced partition: estimates, optimal split, measured effect."""
import itertools

import pytest
import torch

from helpers import build, det_model_cfg, local_wrapper, seg_batch
from mmman.local import backbone_units
from mmman.local.balance import balanced_ends, estimate_costs
from mmman.local.partition import PartitionError, Unit
from mmman.utils import measure_train_step
from mmman.tasks import synthetic_batch
from test_memory import _light_head_model


def test_estimate_is_per_unit_and_leaves_no_trace():
    model = build('mmdet', det_model_cfg())
    model.train()
    units, _ = backbone_units(model)
    buffers = {k: v.clone() for k, v in model.named_buffers()}
    rng = torch.get_rng_state()
    costs, stem, tail = estimate_costs(
        model, units, lambda size: synthetic_batch(model, 2, size),
        (256, 256))
    # Plain-stride ResNet: later stages hold fewer activation bytes (second
    # unit of each stage: the first also saves the stage's input).
    assert costs[1] > costs[3] > costs[5] > costs[7] > 0
    assert stem > 0 and tail > 0
    for k, v in model.named_buffers():
        assert torch.equal(v, buffers[k]), k
    assert torch.equal(torch.get_rng_state(), rng)


def _brute_force(costs, stem, tail, k, branches):
    n, best = len(costs), None
    for cuts in itertools.combinations(range(1, n), k - 1):
        bounds = (0, ) + cuts + (n, )
        worst = 0
        for j in range(k):
            a, b = bounds[j], bounds[j + 1]
            extra = tail if j == k - 1 else branches * costs[b]
            worst = max(worst, sum(costs[a:b]) + extra + (stem if a == 0
                                                          else 0))
        if best is None or worst < best[0]:
            best = (worst, [c - 1 for c in cuts])
    return best


def test_balanced_split_is_optimal():
    gen = torch.Generator().manual_seed(0)
    units = [Unit(f'u{i}', torch.nn.Identity(), True) for i in range(9)]
    for _ in range(20):
        costs = torch.randint(1, 100, (9, ), generator=gen).tolist()
        stem, tail = (int(v) for v in torch.randint(0, 200, (2, ),
                                                    generator=gen))
        for k, branches in ((2, 0), (3, 2), (4, 1)):
            ends = balanced_ends(units, costs, stem, tail, k, branches)
            worst, _ = _brute_force(costs, stem, tail, k, branches)
            bounds = [0] + [e + 1 for e in ends] + [9]
            got = max(
                sum(costs[bounds[j]:bounds[j + 1]]) +
                (tail if j == k - 1 else branches * costs[bounds[j + 1]]) +
                (stem if j == 0 else 0) for j in range(k))
            assert got == worst


def _peak(**local):
    model = _light_head_model()
    model.train()
    wrapper = local_wrapper(model, method='man++', num_blocks=4, **local)
    model.train_step(seg_batch(n=2, size=64), wrapper)
    return wrapper.plan, measure_train_step(
        model, seg_batch(n=2, size=64), wrapper)['peak_saved_bytes']


def test_estimate_extrapolates_to_the_measured_unit_bytes():
    """Convolution units scale with area: the fit from 1/4 and 1/16 of the
    area must match a direct measurement at full size."""
    from mmman.local.balance import _phase_growth
    model = build('mmdet', det_model_cfg())
    model.train()
    units, _ = backbone_units(model)
    costs, _, _ = estimate_costs(
        model, units, lambda size: synthetic_batch(model, 2, size),
        (256, 256))
    direct = _phase_growth(model, units, synthetic_batch(model, 2,
                                                         (256, 256)))
    for i in range(len(units)):
        assert abs(costs[i] - direct[i]) <= 0.02 * direct[i], units[i].name


def test_balanced_partition_lowers_measured_peak():
    even_plan, even = _peak()
    plan, balanced = _peak(balance=dict(img_scale=(64, 64)))
    print(f'\neven {even} B:\n{even_plan.describe()}\n'
          f'balanced {balanced} B:\n{plan.describe()}')
    assert plan.ends != even_plan.ends
    assert balanced < even


def test_balanced_plan_is_cached_per_model_and_scale(tmp_path, monkeypatch):
    import json

    import mmman.local.planning as planning
    from mmman.local.plan_cache import CACHE_FILE
    measured = []

    def counting(*args, **kwargs):
        measured.append(args[-1])
        return estimate_costs(*args, **kwargs)

    monkeypatch.setattr(planning, 'estimate_costs', counting)

    def plan(scale=(128, 128), frozen_stages=-1, base=True, depth=18,
             method='man++'):
        cfg = det_model_cfg(frozen_stages=frozen_stages)
        cfg['backbone']['depth'] = depth
        model = build('mmdet', cfg, seed=len(measured))
        balance = dict(img_scale=scale)
        if base:
            balance['cache_dir'] = str(tmp_path)
        wrapper = local_wrapper(model, take_copies=False, method=method,
                                num_blocks=3, balance=balance)
        return wrapper.plan.ends

    first = plan()
    assert measured == [(128, 128)]
    # Reused: same model and scale, other weights (a resumed run).
    assert plan() == first and len(measured) == 1
    with open(tmp_path / CACHE_FILE) as f:
        assert len(json.load(f)) == 1
    # Never stale: another scale, another trainable set, another
    # architecture (ResNet-34) are measured.
    plan(scale=(256, 128))
    assert measured[-1] == (256, 128) and len(measured) == 2
    plan(frozen_stages=1)
    assert len(measured) == 3
    plan(depth=34)
    assert len(measured) == 4
    # ... and another method with as many eta branches (MAN vs MAN++).
    plan(method='man')
    assert len(measured) == 5
    with open(tmp_path / CACHE_FILE) as f:
        assert len(json.load(f)) == 5
    # The cache serves exactly what measuring gives.
    assert plan(base=False) == first and len(measured) == 6
    # A damaged cache file is measured again and rewritten.
    (tmp_path / CACHE_FILE).write_text('{not json')
    assert plan() == first and len(measured) == 7


@pytest.mark.parametrize('method', ['mlaan', 'mlaan+man'])
def test_balance_refuses_mlaan_in_one_message(method):
    """The balance measures units and eta branches, not MLAAN's cascade
    through the next block and its leap module."""
    model = build('mmdet', det_model_cfg())
    with pytest.raises(PartitionError, match='balance does not support MLAAN'):
        local_wrapper(model, take_copies=False, method=method, num_blocks=3,
                      balance=dict(img_scale=(64, 64)))


def test_balance_scale_comes_from_the_train_pipeline(tmp_path):
    import os.path as osp

    import pytest
    from mmengine.config import Config

    from mmman.apis import configure_balance, pipeline_img_scale
    from mmman.local.partition import PartitionError
    root = osp.dirname(osp.dirname(osp.abspath(__file__)))
    det = Config.fromfile(
        osp.join(root, 'configs', 'mmdet',
                 'faster-rcnn_r50_fpn_man++-k4_1x_coco.py'))
    assert pipeline_img_scale(det) == (800, 1333)  # Resize scale=(w, h)
    seg = Config.fromfile(
        osp.join(root, 'configs', 'mmseg',
                 'deeplabv3_r50-d8_man++-k4_4xb2-40k_cityscapes-512x1024.py'))
    assert pipeline_img_scale(seg) == (512, 1024)  # the crop after resize
    # Mask2Former's shortest-edge choice fixes no size; its crop does
    m2f = Config.fromfile(
        osp.join(root, 'configs', 'mmseg',
                 'mask2former_r50_man++-k4_8xb2-90k_cityscapes-512x1024.py'))
    assert any(t.get('resize_type') == 'ResizeShortestEdge'
               for t in m2f.train_dataloader.dataset.pipeline)
    assert pipeline_img_scale(m2f) == (512, 1024)
    det.work_dir = str(tmp_path)
    det.optim_wrapper.local_cfg.balance = dict()
    configure_balance(det)
    assert det.optim_wrapper.local_cfg.balance == dict(
        img_scale=(800, 1333), cache_dir=str(tmp_path))
    det.optim_wrapper.local_cfg.balance = dict(img_scale=(64, 96))
    configure_balance(det)
    assert det.optim_wrapper.local_cfg.balance.img_scale == (64, 96)
    det.train_dataloader.dataset.pipeline = [dict(type='LoadImageFromFile')]
    det.optim_wrapper.local_cfg.balance = dict()
    configure_balance(det)  # testing needs no scale; the constructor asks
    assert det.optim_wrapper.local_cfg.balance.get('img_scale') is None
    model = build('mmdet', det_model_cfg())
    with pytest.raises(PartitionError, match='balance needs img_scale'):
        local_wrapper(model, take_copies=False, method='man++',
                      num_blocks=3, balance=dict())


def _shipped_local_configs():
    import glob
    import os.path as osp
    root = osp.dirname(osp.dirname(osp.abspath(__file__)))
    return sorted(
        p for task in ('mmdet', 'mmseg')
        for p in glob.glob(osp.join(root, 'configs', task, '**', '*.py'),
                           recursive=True))


def test_balance_flag_overrides_either_default(tmp_path):
    """``balance=True`` turns balancing on over a ``None`` default,
    in a child config and with --cfg-options, where a dict would not merge;
    ``False`` turns the segmentation default off; the constructor reads both
    forms."""
    import os.path as osp

    import pytest
    from mmengine.config import Config

    from mmman.apis import configure_balance
    from mmman.local.balance import resolve_balance_cfg
    from mmman.local.partition import PartitionError
    root = osp.dirname(osp.dirname(osp.abspath(__file__)))
    det_path = osp.join(root, 'configs', 'mmdet',
                        'faster-rcnn_r50_fpn_man++-k4_1x_coco.py')
    child = tmp_path / 'child.py'
    child.write_text(f'_base_ = {det_path!r}\n'
                     'optim_wrapper = dict(local_cfg=dict(balance=True))\n')
    for det in (Config.fromfile(str(child)), Config.fromfile(det_path)):
        if det.optim_wrapper.local_cfg.balance is None:  # balancing off
            det.merge_from_dict({'optim_wrapper.local_cfg.balance': True})
        det.work_dir = str(tmp_path)
        configure_balance(det)
        assert det.optim_wrapper.local_cfg.balance == dict(
            img_scale=(800, 1333), cache_dir=str(tmp_path))
    # A benchmark's config has no work dir: balanced at its size, uncached.
    bench = Config.fromfile(str(child))
    configure_balance(bench, (64, 96))
    assert bench.optim_wrapper.local_cfg.balance == dict(
        img_scale=(64, 96), cache_dir=None)
    seg = Config.fromfile(osp.join(
        root, 'configs', 'mmseg',
        'deeplabv3_r50-d8_man++-k4_4xb2-40k_cityscapes-512x1024.py'))
    seg.merge_from_dict({'optim_wrapper.local_cfg.balance': False})
    configure_balance(seg)
    assert seg.optim_wrapper.local_cfg.balance is None
    assert resolve_balance_cfg(True) == {}
    with pytest.raises(TypeError, match='balance must be a dict'):
        resolve_balance_cfg('yes')

    model = build('mmdet', det_model_cfg())
    even = local_wrapper(model, take_copies=False, method='man++',
                         num_blocks=3).plan.ends
    assert local_wrapper(model, take_copies=False, method='man++',
                         num_blocks=3, balance=False).plan.ends == even
    balanced = local_wrapper(model, take_copies=False, method='man++',
                             num_blocks=3, balance=dict(img_scale=(256, 256)))
    assert balanced.plan.ends != even  # balancing really happened
    with pytest.raises(PartitionError, match='balance needs img_scale'):
        local_wrapper(model, take_copies=False, method='man++',
                      num_blocks=3, balance=True)  # read as dict()


def test_shipped_configs_balance_at_their_pipeline_size(tmp_path):
    """Segmentation and detection configs place their blocks by activation
    memory at their own pipeline's size (detection with per-block gradient
    clipping: docs/results.md, "Detection again, 5 seeds"); MLAAN and the
    three detection configs that state their own local_cfg split evenly."""
    import os.path as osp
    import re

    from mmengine.config import Config

    from mmman.apis import configure_balance
    from mmman.apis.balance_setup import pipeline_img_scale
    from mmman.local.balance import resolve_balance_cfg
    # they state their own local_cfg: the bases of RTMDet and Cascade set
    # custom_hooks / custom_imports, DINO clips itself; DINO's and Cascade's
    # multi-scale pipelines fix no size to balance at
    own = {'rtmdet_tiny_man++-k4_300e_coco.py',
           'dino-4scale_r50_man++-k4_8xb2-12e_coco.py',
           'cascade-mask-rcnn_convnext-t-p4-w7_fpn_4conv1fc-giou_man++-k4_'
           'amp-ms-crop-3x_coco.py'}
    configs = _shipped_local_configs()
    assert len(configs) >= 20
    checked = set()
    for path in configs:
        cfg = Config.fromfile(path)
        local_cfg = cfg.optim_wrapper.get('local_cfg')
        if local_cfg is None or local_cfg.get('method') == 'e2e':
            continue
        task = 'mmseg' if '/configs/mmseg/' in path else 'mmdet'
        checked.add(task)
        if osp.basename(path) in own or local_cfg['method'].startswith(
                'mlaan'):  # MLAAN: balance refuses it (no cascade measured)
            assert resolve_balance_cfg(local_cfg.get('balance')) is None, path
            continue
        assert resolve_balance_cfg(local_cfg.get('balance')) is not None, path
        if task == 'mmdet':
            assert cfg.optim_wrapper.clip_grad.max_norm in (35, 0.1), path
        cfg.work_dir = str(tmp_path)
        scale = pipeline_img_scale(cfg)
        configure_balance(cfg)
        assert scale is not None and tuple(
            local_cfg.balance.img_scale) == tuple(scale), path
        if task == 'mmseg':  # the crop the name gives (SegFormer 1024x1024)
            crop = re.search(r'-(\d+)x(\d+)\.py$', path).groups()
            assert tuple(scale) == tuple(map(int, crop)), path
        assert local_cfg.balance.cache_dir == str(tmp_path)
    assert checked == {'mmdet', 'mmseg'}
