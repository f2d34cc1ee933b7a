"""local_cfg.memory_budget: the plan search, a budget met as measured on
three models, an impossible budget refused before training, the cache."""
import copy
import itertools
import json
import os.path as osp

import pytest
import torch

from helpers import build, local_wrapper, one_thread  # noqa: F401
from mmman.engine import budget_planner
from mmman.engine.budget_planner import _bytes, _training_bytes
from mmman.local.budget import (BudgetCosts, BudgetError, cheapest_plans,
                                fit_budget, parse_bytes, predicted_split)
from mmman.local.plan_cache import CACHE_FILE
from mmman.tasks import synthetic_batch
from mmman.utils import SavedTensorsMeter
from model_cfgs import NUM_CLASSES, det_model_cfg, seg_model_cfg

SIZE = (256, 256)  # the reduced scales (128, 64) stay above the pads


def _costs(seed, flops=False):
    g = torch.Generator().manual_seed(seed)
    n = 5

    def draw(lo, hi, k=n):
        return [int(v) for v in torch.randint(lo, hi, (k, ), generator=g)]

    costs = BudgetCosts(units=draw(50, 400), inputs=draw(5, 40),
                        aux=[0] + draw(20, 300, n - 1),
                        aux_static=[0] + [7] * (n - 1),
                        stem=draw(0, 200, 1)[0], tail=draw(50, 500, 1)[0],
                        static=100)
    if flops:
        costs.forward_flops = draw(10, 100)
        costs.eta_flops = [0] + draw(10, 500, n - 1)
        costs.tail_flops = draw(10, 300, 1)[0]
    return costs


def _every_plan(costs):
    n = len(costs.units)
    for k in range(1, n + 1):
        for ends in itertools.combinations(range(n - 1), k - 1):
            for size in range(k + 1):
                for ckpt in itertools.combinations(range(k), size):
                    yield k, list(ends), list(ckpt)


def _compute(costs, ends, ckpt):
    """What a plan adds to E2E: eta at its boundaries, checkpointed
    blocks' forward (the tail's with the last)."""
    starts, stops = [0] + [e + 1 for e in ends], [e + 1 for e in ends]
    stops.append(len(costs.units))
    again = sum(sum(costs.forward_flops[starts[k]:stops[k]]) for k in ckpt)
    tail = costs.tail_flops if len(ends) in ckpt else 0
    return sum(costs.eta_flops[e + 1] for e in ends) + again + tail


@pytest.mark.parametrize('flops', [False, True])
@pytest.mark.parametrize('seed', range(4))
def test_fewest_blocks_then_least_compute(seed, flops):
    """Of the plans that fit, one with the fewest blocks; of those, the one
    whose eta and recomputation compute least (without measured FLOPs: the
    fewest checkpointed blocks)."""
    costs = _costs(seed, flops)
    plans = [(k, ends, ckpt, predicted_split(costs, ends, ckpt)[0])
             for k, ends, ckpt in _every_plan(costs)]
    lowest = min(p[3] for p in plans)
    highest = max(p[3] for p in plans)
    for budget in torch.linspace(lowest, highest, 7).round().long().tolist():
        fits = [p for p in plans if p[3] <= budget]
        plan = fit_budget(costs, budget)
        assert plan.predicted <= budget
        assert plan.predicted == predicted_split(
            costs, plan.ends, plan.checkpointed)[0]
        fewest = min(p[0] for p in fits)
        assert plan.num_blocks == fewest
        candidates = [p for p in fits if p[0] == fewest]
        if flops:
            least = min(_compute(costs, p[1], p[2]) for p in candidates)
            assert plan.extra_flops == least == _compute(
                costs, plan.ends, plan.checkpointed)
        else:
            assert plan.extra_flops is None
            assert len(plan.checkpointed) == min(
                len(p[2]) for p in candidates)
    with pytest.raises(BudgetError, match=f'{lowest / 2**20:.0f} MiB'):
        fit_budget(costs, lowest - 1)


@pytest.mark.parametrize('seed', range(3))
def test_cheapest_plan_of_every_block_count(seed):
    """``cheapest_plans`` (tools/analysis_tools/budget_plans.py): for each
    K, the least compute of the K-block plans within the limit (brute
    force), by predicted peak or by the largest block."""
    costs = _costs(seed, flops=True)
    plans = [(k, ends, ckpt, *predicted_split(costs, ends, ckpt))
             for k, ends, ckpt in _every_plan(costs)]
    largest = sorted(max(p[4]) for p in plans)
    for saved in largest[::len(largest) // 5]:
        found = {p.num_blocks: p for p in cheapest_plans(costs, saved=saved)}
        for k in range(1, len(costs.units) + 1):
            fits = [p for p in plans if p[0] == k and max(p[4]) <= saved]
            assert (k in found) == bool(fits)
            if fits:
                assert found[k].activations <= saved
                assert found[k].extra_flops == min(
                    _compute(costs, p[1], p[2]) for p in fits)
    budget = sorted(p[3] for p in plans)[len(plans) // 2]
    for plan in cheapest_plans(costs, budget=budget):
        assert plan.predicted <= budget
    with pytest.raises(ValueError):
        cheapest_plans(costs)


def test_of_the_plans_that_fit_the_cheapest_eta_wins():
    """Two blocks fit with the boundary before unit 1, 2 or 3; the most
    even split (before unit 2) puts eta on a unit 5x dearer than unit 3."""
    costs = BudgetCosts(units=[100] * 4, inputs=[100] * 4, aux=[0, 5, 5, 5],
                        aux_static=[0] * 4, stem=0, tail=0, static=0,
                        forward_flops=[10] * 4, eta_flops=[0, 50, 50, 10])
    assert fit_budget(costs, 310).ends == [2]
    costs.forward_flops = None  # not measured: the smallest largest block
    assert fit_budget(costs, 310).ends == [1]


def test_sizes_are_read_or_refused():
    assert parse_bytes('4GiB') == 4 * 2**30
    assert parse_bytes('512 MiB') == 512 * 2**20
    assert parse_bytes('1.5GB') == 1_500_000_000
    assert parse_bytes(1000) == 1000
    for bad in ('4 gallons', '-1GiB', 0, 'GiB'):
        with pytest.raises(ValueError):
            parse_bytes(bad)


@pytest.mark.parametrize('bad', [
    dict(method='e2e'),
    dict(method='mlaan'),
    dict(method='man++', memory_budget=dict(size='4GiB', scale=1)),
])
def test_bad_budget_configs_fail_before_building(bad):
    cfg = dict(dict(method='man++', memory_budget='1GiB'), **bad)
    if 'memory_budget' in bad:
        cfg['memory_budget'] = bad['memory_budget']
    with pytest.raises(ValueError):
        local_wrapper(build('mmseg', seg_model_cfg()), **cfg)


def _cls_model():
    return build('mmpretrain', dict(
        type='ImageClassifier',
        data_preprocessor=dict(num_classes=NUM_CLASSES, mean=[127.5] * 3,
                               std=[127.5] * 3),
        backbone=dict(type='ResNet', depth=18, stem_channels=8,
                      base_channels=8, out_indices=(3, )),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=NUM_CLASSES,
                  in_channels=64, loss=dict(type='CrossEntropyLoss'))))


MODELS = dict(
    seg=lambda: build('mmseg', seg_model_cfg()),
    det=lambda: build('mmdet', det_model_cfg()),
    cls=_cls_model)


def _measured(model, wrapper, batch) -> int:
    """One training step: its peak saved bytes plus parameters, gradients,
    optimizer state (and buffers) of the model and the auxiliary nets."""
    with SavedTensorsMeter() as meter:
        model.train_step(copy.deepcopy(batch), wrapper)
    static = _training_bytes(model.parameters(), wrapper.optimizer)
    static += _bytes(model.buffers())
    aux = getattr(wrapper, 'aux', None)
    if aux is not None:
        static += _training_bytes(aux.parameters(), wrapper.optimizer)
    return meter.peak_bytes + static


@pytest.mark.parametrize('task', sorted(MODELS))
def test_budget_is_met_and_predicted_within_10_percent(task):
    model = MODELS[task]()
    batch = synthetic_batch(model, 2, SIZE)
    e2e = copy.deepcopy(model)
    whole = _measured(e2e, local_wrapper(e2e, method='e2e'), batch)
    with pytest.raises(BudgetError) as err:  # the smallest peak reachable
        local_wrapper(copy.deepcopy(model), method='man++', aux_head=None,
                      memory_budget=dict(size=1, img_scale=SIZE))
    smallest = err.value.smallest.predicted
    assert smallest < 0.9 * whole
    for fraction in (0.9, 0.2):  # of the way from the smallest to E2E
        budget = int(smallest + fraction * (whole - smallest))
        local = copy.deepcopy(model)
        wrapper = local_wrapper(
            local, method='man++', aux_head=None,
            memory_budget=dict(size=budget, img_scale=SIZE))
        plan = wrapper.memory_plan
        assert wrapper.plan.num_blocks == plan['num_blocks'] >= 1
        assert wrapper.plan.num_blocks > 1 or plan['checkpoint']
        assert plan['extra_flops'] > 0  # eta or recomputation, measured
        measured = _measured(local, wrapper, batch)
        assert measured <= budget, (task, fraction, plan, measured)
        assert abs(plan['predicted'] - measured) <= 0.1 * measured, (
            task, fraction, plan['predicted'], measured)


def test_impossible_budget_stops_before_training():
    model = MODELS['seg']()
    before = copy.deepcopy(model.state_dict())
    with pytest.raises(BudgetError) as err:
        local_wrapper(model, method='man++',
                      memory_budget=dict(size='1MiB', img_scale=SIZE))
    assert 'no plan fits memory_budget=1 MiB' in str(err.value)
    assert 'smallest predicted peak is' in str(err.value)
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key  # nothing trained


def test_plan_is_cached_and_reused(tmp_path, monkeypatch):
    model = MODELS['seg']()
    budget = dict(size='20MiB', img_scale=SIZE, cache_dir=str(tmp_path))
    first = local_wrapper(copy.deepcopy(model), method='man++',
                          memory_budget=budget)
    with open(osp.join(tmp_path, CACHE_FILE)) as f:
        entries = list(json.load(f).values())
    assert len(entries) == 1
    assert entries[0]['boundaries'] == first.memory_plan['boundaries']

    def measure_again(*args, **kwargs):
        raise AssertionError('the cached plan was measured again')

    monkeypatch.setattr(budget_planner, 'measure_budget_costs',
                        measure_again)
    # e.g. on --resume; the split settings of an inherited MAN++ config
    # are replaced by the budget's
    again = local_wrapper(copy.deepcopy(model), method='man++',
                          num_blocks=4, balance=True, checkpoint='all',
                          memory_budget=budget)
    assert again.memory_plan == first.memory_plan
    assert again.plan.num_blocks == first.memory_plan['num_blocks']
    assert again.signature == first.signature
    with pytest.raises(AssertionError, match='measured again'):
        local_wrapper(copy.deepcopy(model), method='man++',
                      memory_budget=dict(budget, size='21MiB'))


def test_neck_inputs_saved_before_the_tail_count_with_the_last_block():
    """RetinaNet's FPN reads layer2-4 (``start_level=1``). An E2E forward
    counts their outputs with the units that return them (their last ReLU
    saves them); a local step whose last block starts after such a unit
    frees it with an earlier block and the FPN saves it again: the last
    block's predicted bytes include it. layer1's output, no FPN input, does
    not count."""
    from mmman.local import backbone_units
    model = MODELS['det']()
    batch = synthetic_batch(model, 2, SIZE)
    units, outputs = backbone_units(model)
    found = budget_planner.held_growth(model, units, outputs, batch)
    data = model.data_preprocessor(copy.deepcopy(batch), True)
    feats = model.backbone(data['inputs'])
    names = [units[i].name for i in outputs]
    assert names == ['backbone.layer1.1', 'backbone.layer2.1',
                     'backbone.layer3.1', 'backbone.layer4.1']
    assert found == {('held', outputs[k]): feats[k].untyped_storage().nbytes()
                     for k in (1, 2, 3)}
    costs = _costs(0)
    costs.held_before = [0, 0, 10, 10, 30]
    plain = BudgetCosts(**dict(costs.to_dict(), held_before=None))
    for a in range(1, 5):  # the last block starts at unit a
        assert predicted_split(costs, [a - 1])[1][-1] == predicted_split(
            plain, [a - 1])[1][-1] + costs.held_before[a]
