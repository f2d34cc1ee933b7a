"""Tiny models, generated batches and reference gradients for the tests."""
import copy
import importlib
import json
import os.path as osp
import socket
import subprocess
import sys

import pytest
import torch
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope

import mmman  # noqa: F401  (registers the local-learning pieces)
from mmman.local.unit_trace import first_tensor, map_tensors
from model_cfgs import (NUM_CLASSES, det_model_cfg, seg_model_cfg,  # noqa
                        vit_seg_model_cfg)



@pytest.fixture(scope='module', autouse=True)
def one_thread():
    """Tiny tensors: one thread is as fast, and fair to a busy machine
    (autouse in the modules that import it)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def build(scope, cfg, seed=0):
    """Build a model of the given library with a fixed seed."""
    importlib.import_module(f'{scope}.utils').register_all_modules(False)
    init_default_scope(scope)
    from mmengine.registry import MODELS
    torch.manual_seed(seed)
    return MODELS.build(copy.deepcopy(cfg))


def local_wrapper(model, lr=0.01, take_copies=True, optimizer=None,
                  **local_cfg):
    """LocalOptimWrapper for ``model`` with SGD, copies taken (what
    LocalLearningHook does when a Runner starts training).

    The tests' auxiliary head is the image-level one unless ``aux_head`` is
    given (``aux_head=None``: the task's default objective)."""
    local_cfg.setdefault('aux_head', dict(type='ImageClassAuxHead'))
    wrapper = build_optim_wrapper(
        model,
        dict(
            type='LocalOptimWrapper',
            constructor='LocalOptimWrapperConstructor',
            optimizer=optimizer or dict(type='SGD', lr=lr, momentum=0.9),
            local_cfg=local_cfg))
    if take_copies:
        mmman.start_local_training(wrapper)
    return wrapper


def det_batch(n=2, size=64, seed=0):
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData
    g = torch.Generator().manual_seed(seed)
    inputs, samples = [], []
    for i in range(n):
        inputs.append(
            torch.randint(
                0, 256, (3, size, size), generator=g, dtype=torch.uint8))
        s = DetDataSample(
            metainfo=dict(
                img_shape=(size, size),
                ori_shape=(size, size),
                scale_factor=(1.0, 1.0)))
        s.gt_instances = InstanceData(
            bboxes=torch.tensor([[4.0, 6.0, 40.0, 44.0],
                                 [20.0, 10.0, 60.0, 30.0]]),
            labels=torch.tensor([i % NUM_CLASSES, (i + 1) % NUM_CLASSES]))
        samples.append(s)
    return dict(inputs=inputs, data_samples=samples)


def seg_batch(n=2, size=64, seed=0):
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    g = torch.Generator().manual_seed(seed)
    inputs, samples = [], []
    for _ in range(n):
        inputs.append(
            torch.randint(
                0, 256, (3, size, size), generator=g, dtype=torch.uint8))
        label = torch.randint(
            0, NUM_CLASSES + 1, (1, size, size), generator=g)
        label[:, :4] = 255
        s = SegDataSample(
            metainfo=dict(img_shape=(size, size), ori_shape=(size, size)))
        s.gt_sem_seg = PixelData(data=label)
        samples.append(s)
    return dict(inputs=inputs, data_samples=samples)


STEM = ('conv1', 'norm1', 'bn1', 'stem', 'patch_embed', 'cls_token', 'pos_embed')


def block_params(model, plan, k):
    """Parameters (name -> tensor) trained by block k of the plan.

    Block 1 also owns the stem; the last block owns everything not owned by
    an earlier block (its units, neck, heads).
    """
    if k == plan.num_blocks - 1:
        earlier = set()
        for j in range(plan.num_blocks - 1):
            earlier |= set(block_params(model, plan, j))
        return {
            n: p
            for n, p in model.named_parameters()
            if p.requires_grad and n not in earlier
        }
    prefixes = [u.name + '.' for u in plan.block_units(k)]
    # output layers (Swin's per-stage norms) learn from the model's loss
    last = {
        id(p)
        for u in plan.units for _, m in u.out_layers for p in m.parameters()
    }
    owned = {
        id(p)
        for u in plan.block_units(k) for m in u.tail for p in m.parameters()
    }
    if k == 0:
        prefixes += [f'{plan.backbone}.{s}' for s in STEM]
        # any other stem (HRNet's conv2, bn2): what the backbone registers
        # before its first unit
        first = {id(p) for p in plan.units[0].module.parameters()}
        for p in model.get_submodule(plan.backbone).parameters():
            if id(p) in first:
                break
            owned.add(id(p))
    return {
        n: p
        for n, p in model.named_parameters()
        if p.requires_grad and id(p) not in last and (
            id(p) in owned or any(n.startswith(pre) for pre in prefixes))
    }


def no_aux_dropout(aux):
    """Dropout off in the auxiliary heads (MMSeg's FCNHead has 0.1): local
    losses run amid the forward pass, the reference's after it, so the two
    would draw different masks."""
    for m in aux.modules():
        if isinstance(m, torch.nn.Dropout2d) or isinstance(
                m, torch.nn.Dropout):
            m.p = 0.0


def reference_grads(model, aux, plan, batch):
    """Per-block gradients computed without mmman's machinery.

    Plain forward (no stop-gradient anywhere); block k's gradient is
    d L_k / d theta_k, the last block's is d L_model / d theta_K, each from a
    backward of that loss alone.
    """
    no_aux_dropout(aux)
    calls = {}  # what block k+1's first unit receives: block k's output
    handles = [
        plan.next_unit(k).module.register_forward_pre_hook(
            lambda m, a, kw, k=k: calls.__setitem__(k, map_tensors((a, kw))),
            with_kwargs=True) for k in range(plan.num_blocks - 1)
    ]
    try:
        torch.manual_seed(0)  # same dropout masks as in local_grads
        data = model.data_preprocessor(copy.deepcopy(batch), True)
        losses = model(**data, mode='loss')
    finally:
        for h in handles:
            h.remove()
    model_loss, _ = model.parse_losses(losses)
    aux.train()
    ref = {}
    losses = [
        model.parse_losses(
            aux.loss(k, first_tensor(calls[k]), data['data_samples'],
                     data['inputs'], *calls[k]))[0]
        for k in range(plan.num_blocks - 1)
    ] + [model_loss]
    # backward() per loss (not autograd.grad: reentrant with_cp refuses it).
    for k, loss in enumerate(losses):
        model.zero_grad()
        aux.zero_grad()
        loss.backward(retain_graph=k < len(losses) - 1)
        ref.update({
            n: torch.zeros_like(p) if p.grad is None else p.grad.clone()
            for n, p in block_params(model, plan, k).items()
        })
    model.zero_grad()
    return ref


def local_grads(model, wrapper, batch):
    """Gradients left by one local-learning forward + model backward."""
    if getattr(wrapper, 'aux', None) is not None:
        no_aux_dropout(wrapper.aux)
    wrapper.zero_grad()
    with wrapper.optim_context(model):
        torch.manual_seed(0)  # same dropout masks as in reference_grads
        data = model.data_preprocessor(copy.deepcopy(batch), True)
        losses = model(**data, mode='loss')
    loss, _ = model.parse_losses(losses)
    wrapper.backward(loss)
    return {
        n: (torch.zeros_like(p) if p.grad is None else p.grad.clone())
        for n, p in model.named_parameters() if p.requires_grad
    }


TESTS = osp.dirname(osp.abspath(__file__))
ROOT = osp.dirname(TESTS)


def run_python(*args):
    """``python ARGS`` in the repository root, output captured."""
    return subprocess.run([sys.executable, *args],
                          cwd=ROOT,
                          capture_output=True,
                          text=True)

HOST_ALONE = """
import json, os.path as osp, sys
sys.path.insert(0, {tests!r})
# torchvision is installed but its C++ ops do not load (README): the Runner's
# environment report imports it. Load mmman's fix module alone, by path.
sys.path.append(osp.join(osp.dirname({tests!r}), 'mmman', 'utils'))
import torchvision_compat
torchvision_compat.define_missing_torchvision_ops()
import {package}
from mmengine.config import Config
from mmengine.runner import Runner
import model_cfgs
cfg = Config.fromfile(osp.join(
    osp.dirname({package}.__file__), '.mim', 'configs', {config!r}))
cfg = getattr(model_cfgs, {shrink!r})(cfg, {data_root!r}, {work_dir!r})
cfg.load_from = {checkpoint!r}
{extra}
metrics = Runner.from_cfg(cfg).test()
assert 'mmman' not in sys.modules
print('METRICS' + json.dumps(metrics))
"""


def evaluate_with_host_alone(checkpoint, tmp_path, package, config, shrink,
                         data_root, extra=''):
    """Publish ``checkpoint`` with tools/publish_checkpoint.py and test it
    with the host library's own config (``config``, relative to its .mim
    configs, shrunk by ``model_cfgs.<shrink>``), Runner and checkpoint
    loading, in a process that never imports mmman. Returns the metrics."""
    published = str(tmp_path / 'model.pth')
    out = run_python('tools/publish_checkpoint.py', checkpoint, published)
    assert out.returncode == 0, out.stderr[-2000:]
    script = HOST_ALONE.format(
        tests=TESTS, package=package, config=config, shrink=shrink,
        data_root=data_root, work_dir=str(tmp_path / 'plain'),
        checkpoint=published, extra=extra)
    out = run_python('-c', script)
    line = [ln for ln in out.stdout.splitlines() if ln.startswith('METRICS')]
    assert line, (out.stdout + out.stderr)[-3000:]
    return json.loads(line[0][len('METRICS'):])


def free_port() -> int:
    """A TCP port free on this machine now (for a process group)."""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]
