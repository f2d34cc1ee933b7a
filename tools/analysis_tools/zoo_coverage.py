"""Zoo coverage: which installed host models train with MAN++ K=4.

Walks the configs MMDet, MMSeg and MMPretrain install (``<pkg>/.mim/configs``)
and picks one config per backbone type and host and one per detector
(``model.type``) and segmentor (``model.type`` + decode head) type: COCO,
Cityscapes and ImageNet first, then a config in the type's own folder, then
the smallest variant. For each picked config, in a child process of its own
(random weights, nothing downloaded, one thread):

1. builds the plain (E2E) model and trains one seeded step on a synthetic
   batch of two images at a small size (a larger one if that fails), with
   the model's own data preprocessor in training mode, measuring the peak
   bytes of activations saved for backward;
2. swaps in MAN++ with K = min(4, trainable backbone units) in the one field
   ``optim_wrapper`` and trains the same step: does it partition (or say why
   not), are its losses finite and the model's losses E2E's, are its saved
   activations below E2E's;
3. loads the trained local model's checkpoint ``strict=True`` into a freshly
   built plain model.

Results are appended to a JSONL file, one line per config, so a re-run skips
what is done (``--redo-failed`` retries what did not pass; records of an
older ``RECORD_VERSION`` are measured again); ``--md`` renders the table::

    python tools/analysis_tools/zoo_coverage.py --jobs 2 \\
        --out work_dirs/zoo_coverage.jsonl --md docs/zoo_coverage.md
"""
import argparse
import copy
import gc
import glob
import io
import json
import math
import os
import os.path as osp
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import warnings
from concurrent.futures import ThreadPoolExecutor

warnings.filterwarnings(  # emitted by mmengine's import on setuptools 80
    'ignore', message='pkg_resources is deprecated', category=UserWarning)

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
HOSTS = {
    'mmdet': dict(
        base=('mmdet.models.detectors', 'BaseDetector'),
        kinds=('backbone', 'detector'),
        dataset=re.compile(r'^Coco'),
        img_scale=(256, 256), fallback=(512, 512),
        simple_backbones=('ResNet', ),
        simple_models=('RetinaNet', 'FasterRCNN', 'MaskRCNN', 'FCOS',
                       'RTMDet')),
    'mmseg': dict(
        base=('mmseg.models.segmentors', 'BaseSegmentor'),
        kinds=('backbone', 'segmentor'),
        dataset=re.compile(r'^Cityscapes'),
        img_scale=(128, 256), fallback=(256, 512),
        simple_backbones=('ResNetV1c', 'ResNet'),
        simple_models=('EncoderDecoder', )),
    'mmpretrain': dict(
        base=('mmpretrain.models.classifiers', 'BaseClassifier'),
        kinds=('backbone', ),
        dataset=re.compile(r'^ImageNet$'),
        img_scale=(64, 64), fallback=(224, 224),
        simple_backbones=('ResNet', ),
        simple_models=('ImageClassifier', )),
}
KIND_TITLES = dict(backbone='backbone types', detector='detector types',
                   segmentor='segmentor types (model + decode head)')
# Size words in config names, smallest first (the first one found counts).
_SIZES = [
    (0, ('atto', 'femto', 'pico', 'nano', 'tiny', 'mini', 't', 'n', 'xs',
         'xxs', 'b0', 's0', 'a0', 'r18', 'lite', 'mobile')),
    (1, ('small', 's', 'r34', 's12', 'b1', 's1', 'a1', 'x0.5')),
    (2, ('r50', 'm', 'medium', 'base', 'b', 'mid', 's24', 's2', 'b2')),
    (3, ('r101', 'x101', 'large', 'l', 'b4', 'b5', 's36')),
    (4, ('r152', 'huge', 'h', 'x', 'xl', 'xlarge', 'giant', 'g', 'b7')),
]
# Variants that add something to the type's plain config.
_EXTRAS = ('dcn', 'dconv', 'mdconv', 'dcnv2', 'gn', 'ws', 'fp16', 'amp',
           'lsj', 'ms', 'mstrain', 'instaboost', 'albu', 'gcb', 'carafe',
           'syncbn', 'tta', 'rsb', 'sobel', 'soft', 'pisa', 'ghm', 'groie',
           'distill', 'deploy', 'clip', 'in21k', 'in22k', 'ft', 'pretrain',
           'heavy', 'panoptic', 'semi', 'crop', 'quantized', 'benchmarks',
           'lora', 'rfp', 'sac')
MAX_BLOCKS = 4
RECORD_VERSION = 4  # records of an older version are measured again


# --------------------------------------------------------------------------
# Finding the configs


def config_root(host: str) -> str:
    """The ``.mim/configs`` folder an installed host ships."""
    module = __import__(host)
    return osp.join(osp.dirname(module.__file__), '.mim', 'configs')


def _type_name(cfg, host):
    """A module cfg's type, without the host's own scope prefix."""
    if not isinstance(cfg, dict) or not isinstance(cfg.get('type'), str):
        return None
    name = cfg['type']
    return name[len(host) + 1:] if name.startswith(host + '.') else name


def _train_dataset(cfg) -> dict:
    loader = cfg.get('train_dataloader') or {}
    dataset = loader.get('dataset') or {} if isinstance(loader, dict) else {}
    while isinstance(dataset, dict) and ('dataset' in dataset
                                         or 'datasets' in dataset):
        dataset = dataset.get('dataset') or dataset['datasets'][0]
    return dataset if isinstance(dataset, dict) else {}


def _describe_config(host: str, path: str) -> dict:
    """What the selection needs to know of one config."""
    from mmengine.config import Config
    cfg = Config.fromfile(path)
    model = cfg.get('model') or {}
    head = model.get('decode_head')
    if isinstance(head, (list, tuple)):
        head = head[-1]  # cascade: the last head makes the prediction
    backbone = model.get('backbone')
    return dict(
        model=_type_name(model, host),
        backbone=_type_name(backbone, host),
        head=_type_name(head, host),
        dataset=_train_dataset(cfg).get('type'),
        depth=backbone.get('depth') if isinstance(backbone, dict) else None)


def scan_configs(hosts, cache: str = None) -> list:
    """Every host config that builds a model of the host's own task
    (detectors, segmentors, classifiers), described for the selection.
    Cached in ``cache`` per installed host version."""
    import importlib
    versions = {h: importlib.import_module(h).__version__ for h in hosts}
    if cache and osp.exists(cache):
        with open(cache) as f:
            cached = json.load(f)
        if cached.get('versions') == versions:
            return cached['configs']
    configs = []
    for host in hosts:
        root = config_root(host)
        models = _host_models(host)
        paths = sorted(glob.glob(osp.join(root, '**', '*.py'), recursive=True))
        for path in paths:
            rel = osp.relpath(path, root)
            if rel.split(os.sep)[0] == '_base_':
                continue
            try:
                info = _describe_config(host, path)
            except Exception:  # broken inheritance: not a usable config
                continue
            if not models(info['model']):
                continue  # trackers, self-supervised, multimodal models
            configs.append(dict(host=host, config=rel, **info))
    if cache:
        os.makedirs(osp.dirname(osp.abspath(cache)), exist_ok=True)
        with open(cache, 'w') as f:
            json.dump(dict(versions=versions, configs=configs), f)
    return configs


def _host_models(host: str):
    """``type name -> bool``: is it one of the host's task models."""
    import importlib
    importlib.import_module(f'{host}.utils').register_all_modules(False)
    registry = importlib.import_module(f'{host}.registry').MODELS
    module, name = HOSTS[host]['base']
    base = getattr(importlib.import_module(module), name)

    def is_task_model(type_name):
        if not type_name:
            return False
        try:
            cls = registry.get(type_name)
        except Exception:
            return False
        return isinstance(cls, type) and issubclass(cls, base)

    return is_task_model


def _norm(name: str) -> str:
    return re.sub(r'[^a-z0-9]', '', name.lower())


def _own_folder(folder: str, type_name: str) -> bool:
    """Whether a config folder is named after a type (``faster_rcnn`` and
    ``FasterRCNN``, ``swin`` and ``SwinTransformer``, ``psp`` and
    ``PSPHead``)."""
    folder, name = _norm(folder), _norm(type_name)
    name = name[:-4] if name.endswith('head') and len(name) > 4 else name
    return bool(folder) and (name.startswith(folder) or (
        folder.startswith(name) and len(folder) - len(name) <= 3))


def _words(config: str) -> list:
    """The words of a config's path: ``regnetx-3.2gf``, ``s0``, ``deploy``."""
    return re.split(r'[_\-+/]', osp.splitext(config)[0].lower())


def _size(info: dict) -> float:
    words = _words(info['config'])
    for rank, names in _SIZES:
        if any(w in names for w in words):
            return rank
    for w in words:  # RegNet: regnetx-400mf, regnetx-3.2gf
        flops = re.fullmatch(r'(?:regnetx|regnety)?(\d+(?:\.\d+)?)(mf|gf)', w)
        if flops:
            scale = 1000 if flops.group(2) == 'mf' else 1
            gf = float(flops.group(1)) / scale
            return min(4.0, gf)
    depth = info.get('depth')
    return depth / 50 if isinstance(depth, int) else 1.5


def _rank(info: dict, kind: str, type_name: str) -> tuple:
    """Sort key: preferred dataset, own folder, a plain partner (a common
    model for backbone rows, a ResNet for model rows), fewest extras,
    smallest, shortest name."""
    host = HOSTS[info['host']]
    name = osp.basename(info['config'])
    words = set(_words(info['config']))
    folder = info['config'].split(os.sep)[0]
    plain = (info['model'] in host['simple_models'] if kind == 'backbone'
             else info['backbone'] in host['simple_backbones'])
    return (not host['dataset'].match(info['dataset'] or ''),
            not _own_folder(folder, type_name), not plain,
            len(words & set(_EXTRAS)), _size(info), len(name), name)


def entry_type(info: dict, kind: str):
    """The type a config stands for in a table of ``kind``."""
    if kind == 'backbone':
        return info['backbone']
    if kind == 'segmentor':
        return f"{info['model']}/{info['head']}" if info['head'] else None
    return info['model']


def select_entries(configs: list) -> list:
    """One entry (host, kind, type, config) per type of every table."""
    groups = {}
    for info in configs:
        for kind in HOSTS[info['host']]['kinds']:
            name = entry_type(info, kind)
            if name:
                groups.setdefault((info['host'], kind, name), []).append(info)
    entries = []
    for (host, kind, name), infos in sorted(groups.items()):
        best = min(infos, key=lambda i: _rank(i, kind, name))
        entries.append(dict(host=host, kind=kind, type=name,
                            config=best['config'], candidates=len(infos)))
    return entries


# --------------------------------------------------------------------------
# One entry


def _refuse_network() -> None:
    """Nothing is downloaded: any connection fails at once, clearly."""
    def refuse(*args, **kwargs):
        raise OSError('zoo_coverage runs offline: a download was refused')

    socket.socket.connect = refuse
    socket.create_connection = refuse
    for var in ('HF_HUB_OFFLINE', 'TRANSFORMERS_OFFLINE',
                'HF_DATASETS_OFFLINE'):
        os.environ[var] = '1'


def _strip_pretrained(node):
    """Drop ``pretrained`` and every ``init_cfg`` of type Pretrained."""
    if isinstance(node, dict):
        for key in list(node):
            value = node[key]
            if key in ('pretrained', 'teacher_ckpt'):
                node.pop(key)
            elif key == 'init_cfg' and _is_pretrained(value):
                node.pop(key)
            elif key == 'init_cfg' and isinstance(value, list):
                node[key] = [v for v in value if not _is_pretrained(v)]
            else:
                _strip_pretrained(value)
    elif isinstance(node, list):
        for value in node:
            _strip_pretrained(value)


def _is_pretrained(init_cfg) -> bool:
    """``dict(type='Pretrained', ...)``, or a bare ``dict(checkpoint=URL)``
    that backbones such as PVT load themselves."""
    return isinstance(init_cfg, dict) and (
        init_cfg.get('type') == 'Pretrained' or 'checkpoint' in init_cfg)


def _fit_preprocessor(model_cfg, img_scale) -> None:
    """Batch paddings to a fixed size (MMSeg's ``size``, MMDet's
    ``BatchFixedSizePad``) pad to the measured size instead."""
    pre = model_cfg.get('data_preprocessor')
    if not isinstance(pre, dict):
        return
    if pre.get('size') is not None:
        pre['size'] = tuple(img_scale)
    for augment in pre.get('batch_augments') or []:
        if isinstance(augment, dict) and augment.get(
                'type') == 'BatchFixedSizePad':
            augment['size'] = tuple(img_scale)


def load_host_config(host: str, config: str, cfg_options=None):
    """The config, offline: no pretrained weights, no ``load_from``; the
    top-level ``data_preprocessor`` in the model as the Runner puts it."""
    from mmengine.config import Config
    path = config if osp.isabs(config) else osp.join(config_root(host), config)
    cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    cfg.load_from = None
    _strip_pretrained(cfg.model)
    teacher = cfg.model.get('teacher_config')
    if isinstance(teacher, str) and teacher.startswith('configs/'):
        # a path from the host repository's root: the installed copy
        cfg.model.teacher_config = osp.join(
            config_root(host), teacher[len('configs/'):])
    if cfg.get('data_preprocessor') is not None:
        cfg.model.setdefault('data_preprocessor',
                             copy.deepcopy(cfg.data_preprocessor))
    return cfg


def own_size(cfg, host: str) -> tuple:
    """The size to fall back to where the small one fails (a fixed window
    or position table, a large pooling): the config's own crop (MMSeg's
    ``data_preprocessor.size``, MMPretrain's train pipeline); 512x512 for
    detectors."""
    from mmman.apis import pipeline_img_scale
    size = None
    if host == 'mmseg':
        size = (cfg.model.get('data_preprocessor') or {}).get('size')
    if host != 'mmdet' and not size:
        try:
            size = pipeline_img_scale(cfg)
        except Exception:  # no train pipeline to read
            size = None
    return tuple(size) if size else HOSTS[host]['fallback']


UNFROZEN = {'model.backbone.frozen_stages': -1}


def _unfreezable(cfg, cfg_options=None) -> bool:
    """The config file's ``frozen_stages`` froze the backbone (one given in
    ``cfg_options`` is kept: a refusal asked for)."""
    if 'model.backbone.frozen_stages' in (cfg_options or {}):
        return False
    stages = cfg.model.get('backbone', {}).get('frozen_stages', -1)
    return isinstance(stages, int) and stages >= 0


def _build_model(cfg, host, img_scale):
    """The model with random weights, the same at every build: parameters
    the host leaves uninitialised without a checkpoint (MMDet's
    ``TridentConv`` allocates ``torch.Tensor(...)``) are found by building
    twice and get seeded Kaiming-normal values (their names are kept in
    ``model.zoo_initialised``)."""
    import torch
    model_cfg = copy.deepcopy(cfg.model)
    _fit_preprocessor(model_cfg, img_scale)
    model, twin = _seeded_build(model_cfg), _seeded_build(model_cfg)
    torch.manual_seed(0)
    model.zoo_initialised = []
    with torch.no_grad():
        for (name, param), other in zip(model.named_parameters(),
                                        twin.parameters()):
            if not torch.equal(param, other):  # uninitialised memory
                if param.dim() > 1:
                    torch.nn.init.kaiming_normal_(param)
                else:
                    param.zero_()
                model.zoo_initialised.append(name)
    del twin
    model.train()
    return model


def _seeded_build(model_cfg):
    from mmengine.registry import MODELS
    import torch
    torch.manual_seed(0)
    model = MODELS.build(copy.deepcopy(model_cfg))
    model.init_weights()
    return model


def _e2e_wrapper_cfg(cfg) -> dict:
    """The config's own optimizer in a plain ``OptimWrapper`` (AMP and
    gradient accumulation dropped: one step on the CPU)."""
    wrapper = copy.deepcopy(cfg.optim_wrapper)
    wrapper['type'] = 'OptimWrapper'
    for key in ('loss_scale', 'dtype', 'accumulative_counts', 'use_fsdp'):
        wrapper.pop(key, None)
    return wrapper


def local_wrapper_cfg(cfg, num_blocks: int) -> dict:
    """The one-field swap: MAN++ with the config's own optimizer,
    ``clip_grad`` and ``paramwise_cfg``."""
    own = cfg.optim_wrapper
    wrapper = dict(type='LocalOptimWrapper',
                   constructor='LocalOptimWrapperConstructor',
                   optimizer=copy.deepcopy(own['optimizer']),
                   local_cfg=dict(method='man++', num_blocks=num_blocks))
    for key in ('clip_grad', 'paramwise_cfg'):
        if own.get(key) is not None:
            wrapper[key] = copy.deepcopy(own[key])
    return wrapper


def activation_meter(*modules):
    """A :class:`~mmman.utils.SavedTensorsMeter` that counts activations
    only: tensors stored in a parameter or buffer of ``modules`` are not
    counted, frozen ones included (the meter itself skips trainable
    parameters only, so it would count the weights of MAN++'s EMA copy
    eta'', which convolutions save for the input gradient)."""
    from mmman.utils import SavedTensorsMeter
    weights = {
        t.untyped_storage().data_ptr()
        for m in modules if m is not None
        for t in (*m.parameters(), *m.buffers())
    }

    class ActivationMeter(SavedTensorsMeter):

        def _pack(self, tensor):
            if tensor.untyped_storage().data_ptr() in weights:
                return tensor
            return super()._pack(tensor)

    return ActivationMeter()


def _step(model, wrapper, batch) -> dict:
    """One measured training step; its losses and saved peak bytes. Seeded,
    and the auxiliary nets' random draws undone, so that E2E and MAN++
    sample the same (dropout, DETR's denoising queries, R-CNN samplers) and
    their model losses can be compared."""
    import random

    import numpy as np
    import torch
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    aux = getattr(wrapper, 'aux', None)
    handles = _isolate_rng(aux) if aux is not None else []
    try:
        with activation_meter(model, aux) as meter:
            log_vars = model.train_step(copy.deepcopy(batch), wrapper)
    finally:
        for handle in handles:
            handle.remove()
    losses = {k: float(v) for k, v in log_vars.items()
              if isinstance(v, (int, float, torch.Tensor))}
    return dict(saved=meter.peak_bytes, losses=losses,
                finite=all(math.isfinite(v) for v in losses.values()))


def _isolate_rng(module) -> list:
    """Every leaf layer of ``module`` (the auxiliary nets: the dropout of
    MMSeg's FCNHead as a local objective, the drop path of the eta copies)
    gives back the random numbers it drew, so that the model's own random
    layers draw E2E's. Returns the hook handles."""
    import torch
    saved = {}

    def save(layer, args):
        saved[id(layer)] = torch.get_rng_state()

    def restore(layer, args, output):
        torch.set_rng_state(saved.pop(id(layer)))

    handles = []
    for layer in module.modules():
        if next(layer.children(), None) is None:
            handles += [layer.register_forward_pre_hook(save),
                        layer.register_forward_hook(restore)]
    return handles


def _origin(filename: str) -> str:
    path = osp.abspath(filename)
    if path.startswith(osp.join(ROOT, 'mmman') + os.sep):
        return 'mmman'
    if path == osp.abspath(__file__):
        return 'zoo_coverage'
    match = re.search(r'site-packages/([^/]+)/', path)
    return match.group(1) if match else 'other'


def _where(frame) -> str:
    """``file:line``: from site-packages, the repository or the standard
    library."""
    path = osp.abspath(frame.filename)
    match = (re.search(r'site-packages/(.+)$', path)
             or re.search(r'/lib/python3[.\d]*/(.+)$', path))
    if match:
        short = match.group(1)
    elif path.startswith(ROOT + os.sep):
        short = osp.relpath(path, ROOT)
    else:
        short = path
    return f'{short}:{frame.lineno}'


def error_info(exc: BaseException, stage: str) -> dict:
    """The exception's last line, where it was raised (file:line and whose
    code: mmman or a host) and the innermost mmman frame on the way."""
    frames = traceback.extract_tb(exc.__traceback__)
    message = ' '.join(str(exc).split()) or repr(exc)
    info = dict(stage=stage, error=f'{type(exc).__name__}: {message[:400]}')
    if frames:
        info.update(where=_where(frames[-1]),
                    origin=_origin(frames[-1].filename))
        ours = [f for f in frames if _origin(f.filename) == 'mmman']
        if ours:
            info['mmman_where'] = _where(ours[-1])
    return info


def _prepare_run(host: str) -> None:
    """The host's registries and default scope, and the loop's iteration
    info in the message hub (YOLOX's batch resize reads it)."""
    import importlib
    from mmengine.logging import MessageHub
    from mmengine.registry import init_default_scope
    import mmman  # noqa: F401  (registers the local-learning pieces)
    importlib.import_module(f'{host}.utils').register_all_modules(False)
    init_default_scope(host)
    hub = MessageHub.get_current_instance()
    for key, value in dict(iter=0, epoch=0, max_iters=1, max_epochs=1).items():
        hub.update_info(key, value)  # what a Runner's loop has set


def _quiet_child() -> None:
    """One thread, warnings only (no per-parameter initialisation log)."""
    import logging
    import torch
    from mmengine.logging import MMLogger
    torch.set_num_threads(1)
    logger = MMLogger.get_current_instance()
    for handler in [logger, *logger.handlers]:
        handler.setLevel(logging.WARNING)


def run_entry(host: str, config: str, img_scale=None, cfg_options=None,
              batch_size: int = 2) -> dict:
    """Measure one config in this process; never raises for the model's
    sake: every failure is recorded with its stage."""
    from mmengine.optim import build_optim_wrapper
    from mmman.engine import start_local_training
    from mmman.local import PartitionError, backbone_units
    from mmman.tasks import synthetic_batch
    start = time.time()
    _prepare_run(host)
    rec = dict(host=host, config=config, builds=False, partitions=None,
               trains=None, strict=None)
    try:
        cfg = load_host_config(host, config, cfg_options)
    except Exception as exc:
        rec['error'] = error_info(exc, 'config')
        return _done(rec, start)
    sizes = [tuple(img_scale)] if img_scale else [
        HOSTS[host]['img_scale'], own_size(cfg, host)]
    sizes = list(dict.fromkeys(tuple(s) for s in sizes))
    attempts = []
    for size in sizes:  # the small size, then the config's own
        stage = 'build'
        try:
            model = _build_model(cfg, host, size)
            stage = 'batch'
            batch = synthetic_batch(model, batch_size, size)
            stage = 'e2e_step'
            wrapper = build_optim_wrapper(model, _e2e_wrapper_cfg(cfg))
            e2e = _step(model, wrapper, batch)
        except Exception as exc:
            attempts.append(dict(img_scale=size, **error_info(exc, stage)))
            model = wrapper = None
            gc.collect()
            continue
        break
    else:
        rec['error'] = attempts[-1]
        rec['attempts'] = attempts
        return _done(rec, start)
    if attempts:
        rec['attempts'] = attempts
    if model.zoo_initialised:
        rec['adapted'] = (
            f'{len(model.zoo_initialised)} parameters the host leaves '
            'uninitialised without a checkpoint got seeded random values '
            f'(e.g. {model.zoo_initialised[0]})')
    rec.update(builds=True, img_scale=list(size), e2e_saved=e2e['saved'],
               e2e_finite=e2e['finite'], e2e_losses=e2e['losses'])
    e2e_state = _checkpoint_roundtrip(model)  # what the host's run saves
    del model, wrapper
    gc.collect()

    # MAN++: partition, one step.
    try:
        model = _build_model(cfg, host, size)
        units, _ = backbone_units(model)
        trainable = sum(u.trainable for u in units)
        if not trainable and _unfreezable(cfg, cfg_options):
            # A linear probe (MoCoV3's benchmark): the only classifier
            # config of its backbone type freezes every stage.
            del model
            gc.collect()
            rec = run_entry(host, config, img_scale,
                            dict(cfg_options or {}, **UNFROZEN), batch_size)
            rec['adapted'] = ('trained with frozen_stages=-1: the config '
                              'freezes every backbone stage (a linear probe)')
            return rec
        rec.update(units=len(units), trainable_units=trainable)
        rec['num_blocks'] = max(1, min(MAX_BLOCKS, trainable))
        wrapper = build_optim_wrapper(
            model, local_wrapper_cfg(cfg, rec['num_blocks']))
        start_local_training(wrapper)
    except PartitionError as exc:
        rec.update(partitions=False, error=error_info(exc, 'partition'))
        return _done(rec, start)
    except Exception as exc:
        rec['error'] = error_info(exc, 'local_build')
        return _done(rec, start)
    rec.update(partitions=True, plan=wrapper.plan.describe())
    try:
        local = _step(model, wrapper, batch)
    except Exception as exc:
        rec.update(trains=False, error=error_info(exc, 'local_step'))
        return _done(rec, start)
    rec.update(trains=local['finite'], local_saved=local['saved'],
               local_losses=local['losses'],
               saved_ratio=local['saved'] / max(e2e['saved'], 1))
    if not local['finite']:
        rec['error'] = dict(stage='local_step',
                            error='non-finite losses: ' + ', '.join(
                                k for k, v in local['losses'].items()
                                if not math.isfinite(v)))
    rec['loss_mismatch'] = loss_mismatch(e2e['losses'], local['losses'])

    # The trained local model's checkpoint into a fresh plain model; if that
    # fails, whether the host's own (E2E) checkpoint fails the same way.
    try:
        state = _checkpoint_roundtrip(model)
        del model, wrapper
        gc.collect()
        fresh = _build_model(cfg, host, size)
    except Exception as exc:
        rec['strict'] = False
        rec.setdefault('error', error_info(exc, 'strict_load'))
        return _done(rec, start)
    try:
        fresh.load_state_dict(state, strict=True)
        rec['strict'] = True
    except Exception as exc:
        rec['strict'] = False
        rec['same_keys_as_e2e'] = _key_shapes(state) == _key_shapes(e2e_state)
        rec['e2e_strict'] = _loads_strictly(fresh, e2e_state)
        rec.setdefault('error', error_info(exc, 'strict_load'))
    return _done(rec, start)


def loss_mismatch(e2e: dict, local: dict, rtol: float = 1e-3) -> list:
    """The model losses where the MAN++ step differs from E2E's. Local
    learning must not change the forward, so on the same weights and batch
    these agree; ``[name, e2e, man++]`` per difference (None: missing)."""
    diffs = []
    for key in sorted(set(e2e) | set(local)):
        a, b = e2e.get(key), local.get(key)
        if a is None or b is None or not (
                abs(a - b) <= rtol * max(1.0, abs(a)) or (a != a and b != b)):
            diffs.append([key, a, b])
    return diffs


def _key_shapes(state: dict) -> dict:
    """What a strict load checks: the keys and their shapes."""
    return {k: list(v.shape) for k, v in state.items()}


def _loads_strictly(model, state: dict) -> bool:
    """Whether ``state`` loads ``strict=True`` into ``model`` (the host's
    load hooks run: SwinV2's drops its re-initialised tables)."""
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError:
        return False
    return True


def _checkpoint_roundtrip(model) -> dict:
    """The model's weights as a checkpoint saves and loads them."""
    import torch
    from mmengine.runner.checkpoint import get_state_dict, weights_to_cpu
    buffer = io.BytesIO()
    torch.save(weights_to_cpu(get_state_dict(model)), buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def _done(rec: dict, start: float) -> dict:
    rec['version'] = RECORD_VERSION
    rec['seconds'] = round(time.time() - start, 1)
    rec['status'] = status(rec)
    return rec


def strict_as_e2e(rec: dict) -> bool:
    """The MAN++ checkpoint has the E2E one's keys and shapes, and the E2E
    one does not load strictly into a fresh model either (a host model that
    adds modules in its forward, e.g. DDQ-DETR)."""
    return bool(rec.get('same_keys_as_e2e')) and rec.get('e2e_strict') is False


def status(rec: dict) -> str:
    """ok | not below E2E | no strict load | trains not | refused |
    local build failed | does not build | timeout | crashed."""
    if rec.get('status') in ('timeout', 'crashed'):
        return rec['status']
    if not rec.get('builds'):
        return 'does not build'
    if rec.get('partitions') is False:
        return 'refused'
    if rec.get('partitions') is None:
        return 'local build failed'
    if not rec.get('trains'):
        return 'trains not'
    if not (rec.get('strict') or strict_as_e2e(rec)):
        return 'no strict load'
    if rec['saved_ratio'] >= 1:
        return 'not below E2E'
    return 'ok'


# --------------------------------------------------------------------------
# Many entries


def _log_path(log_dir, host, config) -> str:
    return osp.join(log_dir, f"{host}__{config.replace(os.sep, '__')}.log")


def _run_child(job: dict, args) -> dict:
    """One config in a fresh process with a time limit."""
    with tempfile.NamedTemporaryFile(suffix='.json', delete=False) as f:
        out = f.name
    cmd = [sys.executable, osp.abspath(__file__), '--single', out,
           '--host', job['host'], '--config', job['config']]
    if args.img_scale:
        cmd += ['--img-scale', *map(str, args.img_scale)]
    env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1',
               PYTHONWARNINGS='ignore')
    log = _log_path(args.log_dir, job['host'], job['config'])
    start = time.time()
    rec = dict(host=job['host'], config=job['config'])
    try:
        with open(log, 'w') as f:
            proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT,
                                  env=env, timeout=args.timeout, cwd=ROOT)
        if proc.returncode == 0 and osp.getsize(out):
            with open(out) as f:
                rec = json.load(f)
        else:
            rec.update(status='crashed', error=dict(
                stage='process', error=f'exit {proc.returncode}: '
                f'{_last_line(log)}'))
    except subprocess.TimeoutExpired:
        rec.update(status='timeout', error=dict(
            stage='process', error=f'over {args.timeout} s'))
    finally:
        os.remove(out)
    rec['seconds'] = round(time.time() - start, 1)  # the whole process
    rec.setdefault('version', RECORD_VERSION)
    rec['status'] = status(rec)
    return rec


def _last_line(log: str) -> str:
    with open(log, errors='replace') as f:
        lines = [line.strip() for line in f if line.strip()]
    return lines[-1][:300] if lines else '(no output)'


def read_records(path: str) -> dict:
    """``(host, config) -> record``; a later line wins."""
    records = {}
    if path and osp.exists(path):
        with open(path) as f:
            for line in f:
                if line.strip():
                    rec = json.loads(line)
                    rec['status'] = status(rec)  # by this version's rules
                    records[(rec['host'], rec['config'])] = rec
    return records


def _is_failure(rec: dict) -> bool:
    return rec['status'] != 'ok'


def run_all(entries: list, args) -> None:
    """Run every entry's config not yet in ``args.out``, in parallel."""
    done = read_records(args.out)
    jobs, seen = [], set()
    for e in entries:
        key = (e['host'], e['config'])
        if key in seen:
            continue
        seen.add(key)
        old = done.get(key)
        if (old is None or old.get('version') != RECORD_VERSION
                or (args.redo_failed and _is_failure(old))):
            jobs.append(dict(host=e['host'], config=e['config']))
    print(f'{len(seen)} configs for {len(entries)} types; '
          f'{len(seen) - len(jobs)} done already, {len(jobs)} to run '
          f'with {args.jobs} jobs', flush=True)
    os.makedirs(args.log_dir, exist_ok=True)
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    lock, count = threading.Lock(), [0]

    def work(job):
        rec = _run_child(job, args)
        with lock:
            with open(args.out, 'a') as f:
                f.write(json.dumps(rec) + '\n')
            count[0] += 1
            ratio = rec.get('saved_ratio')
            print(f"[{count[0]}/{len(jobs)}] {rec['status']:<18} "
                  f"{rec['seconds']:>6.0f} s  {job['host']} {job['config']}"
                  + (f'  saved x{ratio:.2f}' if ratio is not None else '')
                  + (f"  ({rec['error']['error'][:100]})"
                     if rec['status'] != 'ok' and rec.get('error') else ''),
                  flush=True)

    with ThreadPoolExecutor(args.jobs) as pool:
        list(pool.map(work, jobs))


# --------------------------------------------------------------------------
# The table


def _reason(rec) -> str:
    text = _failure(rec)
    if (rec or {}).get('adapted'):
        text = f"{rec['adapted']}; {text}" if text else rec['adapted']
    diffs = (rec or {}).get('loss_mismatch')
    if diffs:
        shown = ', '.join(f'{k} {_num(a)} → {_num(b)}'
                          for k, a, b in diffs[:3])
        more = f' (+{len(diffs) - 3} more)' if len(diffs) > 3 else ''
        note = f'MAN++ changes the model\'s losses: {shown}{more}'
        text = f'{text}; {note}' if text else note
    return text


def _num(value) -> str:
    return '–' if value is None else f'{value:.4g}'


def _failure(rec) -> str:
    if rec is None:
        return 'not run yet'
    state = rec['status']
    err = rec.get('error') or {}
    where = err.get('where')
    text = err.get('error', '')
    if state == 'ok' and strict_as_e2e(rec):
        return ('the host\'s own E2E checkpoint does not load strictly '
                f'into a fresh model either: {text}')
    if state == 'ok':
        return ''
    if state == 'not below E2E':
        return f"saved activations x{rec['saved_ratio']:.2f} of E2E"
    if state == 'refused':
        return text
    prefix = {
        'does not build': ('no synthetic batch (mmman)'
                           if err.get('stage') == 'batch' else
                           'does not build (host)'),
        'trains not': f"training fails ({err.get('stage', '')})",
    }.get(state, state)
    tail = f' at `{where}`' if where else ''
    if err.get('mmman_where') and err.get('origin') != 'mmman':
        tail += f" (from `{err['mmman_where']}`)"
    return f'{prefix}: {text}{tail}'


def _cell(value) -> str:
    return {True: 'yes', False: 'no', None: '–'}[value]


def _md_escape(text: str) -> str:
    return text.replace('|', '\\|').replace('\n', ' ')


def summary(entries, records) -> list:
    """Count rows per (host, kind), per kind and in total."""
    rows = {}

    def add(key, rec):
        row = rows.setdefault(key, dict(types=0, builds=0, partitions=0,
                                        trains=0, below=0, strict=0, ok=0,
                                        refused=0, outside=0, changed=0))
        row['types'] += 1
        if rec is None or not rec.get('builds'):
            return
        row['builds'] += 1
        row['partitions'] += bool(rec.get('partitions'))
        row['trains'] += bool(rec.get('trains'))
        row['below'] += bool(rec.get('trains')) and rec.get(
            'saved_ratio', 1) < 1
        row['strict'] += bool(rec.get('strict')) or strict_as_e2e(rec)
        row['ok'] += rec['status'] == 'ok'
        row['refused'] += rec['status'] == 'refused'
        row['changed'] += bool(rec.get('loss_mismatch'))
        row['outside'] += rec['status'] in (
            'trains not', 'local build failed', 'no strict load') and (
                rec.get('error') or {}).get('origin') != 'mmman'

    for e in entries:
        rec = records.get((e['host'], e['config']))
        add((e['host'], e['kind']), rec)
        add(('all', 'backbone' if e['kind'] == 'backbone'
             else 'detector/segmentor'), rec)
        add(('all', 'all'), rec)
    return rows


def markdown(entries, records, command) -> str:
    """The coverage document: command, summary, one table per host."""
    lines = [
        '# Zoo coverage: MAN++ on the installed host models', '',
        'Generated by `tools/analysis_tools/zoo_coverage.py` (re-run it after '
        'changing mmman: finished configs are skipped, `--redo-failed` '
        'retries the others):', '', '```', command, '```', '',
        'One config per backbone type and host and per detector / segmentor '
        'type (COCO, Cityscapes, ImageNet first; the type\'s own folder; '
        'the smallest variant), random weights, nothing downloaded. Each '
        'trains one step on two synthetic images (detection 256x256, '
        'segmentation 128x256, classification 64x64; where that fails the '
        'config\'s own crop, detection 512x512) end to end, '
        'then with the one-field swap to MAN++ K = min(4, trainable '
        'backbone units). *partitions*: the block plan is built (else the '
        'refusal); *trains*: the MAN++ step runs with finite losses; '
        '*saved*: peak bytes saved for backward, MAN++ / E2E; *strict*: the '
        'trained local model\'s checkpoint loads `strict=True` into a '
        'freshly built plain model. Types whose plain model does not build '
        'or train on CPU with random weights are listed as *does not build '
        '(host)* and left out of the percentages. *refused*: a '
        '`PartitionError` before training; *as E2E*: the MAN++ checkpoint has '
        'exactly the keys and shapes of the host\'s own E2E checkpoint, which '
        'does not load strictly into a freshly built model either; '
        '*losses changed*: the MAN++ step\'s model losses differ from the '
        'E2E step\'s on the same weights, batch and random numbers (seeded; '
        'the auxiliary nets\' random draws undone): local learning must not '
        'change the forward (noted in the reason); '
        '*raised outside mmman*: a '
        'failure whose innermost frame is host, MMEngine or torch code (the '
        'mmman frame that called it is given in the reason). Saved bytes '
        'count activations only: tensors stored in a parameter or buffer '
        '(frozen ones too, e.g. the EMA copy eta\'\') are left out.', '',
        '## Summary', '',
        '| host | table | types | build | partition | train | below E2E '
        '| strict | all four | % of built | refused | raised outside mmman '
        '| losses changed |',
        '|---|---|---|---|---|---|---|---|---|---|---|---|---|'
    ]
    rows = summary(entries, records)
    order = [(h, k) for h in HOSTS for k in HOSTS[h]['kinds']] + [
        ('all', 'backbone'), ('all', 'detector/segmentor'), ('all', 'all')]
    for key in order:
        r = rows.get(key)
        if not r:
            continue
        pct = f"{100 * r['ok'] / r['builds']:.0f}%" if r['builds'] else '–'
        name = f'**{key[0]}**' if key[0] == 'all' else key[0]
        lines.append(f"| {name} | {key[1]} | {r['types']} | {r['builds']} "
                     f"| {r['partitions']} | {r['trains']} | {r['below']} "
                     f"| {r['strict']} | {r['ok']} | {pct} | {r['refused']} "
                     f"| {r['outside']} | {r['changed']} |")
    for host in HOSTS:
        for kind in HOSTS[host]['kinds']:
            rows_here = [e for e in entries
                         if e['host'] == host and e['kind'] == kind]
            if not rows_here:
                continue
            lines += ['', f'## {host}: {KIND_TITLES[kind]}', '',
                      '| type | config | K | partitions | trains | saved '
                      '| strict | reason |',
                      '|---|---|---|---|---|---|---|---|']
            for e in rows_here:
                rec = records.get((host, e['config']))
                built = rec is not None and rec.get('builds')
                ratio = rec.get('saved_ratio') if rec else None
                lines.append('| ' + ' | '.join([
                    e['type'], f"`{e['config']}`",
                    str(rec.get('num_blocks', '–')) if built else '–',
                    _cell(rec.get('partitions')) if built else '–',
                    _cell(rec.get('trains')) if built else '–',
                    f'{ratio:.2f}' if ratio is not None else '–',
                    ('as E2E' if strict_as_e2e(rec) else
                     _cell(rec.get('strict'))) if built else '–',
                    _md_escape(_reason(rec)),
                ]) + ' |')
    return '\n'.join(lines) + '\n'


# --------------------------------------------------------------------------


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split('\n', 1)[1])
    parser.add_argument('--hosts', nargs='+', default=list(HOSTS),
                        choices=list(HOSTS))
    parser.add_argument('--only', nargs='+', metavar='TYPE',
                        help='only these types (or config file names)')
    parser.add_argument('--jobs', type=int, default=2,
                        help='configs run in parallel (one thread each)')
    parser.add_argument('--timeout', type=int, default=900,
                        help='seconds per config')
    parser.add_argument('--img-scale', type=int, nargs=2, metavar=('H', 'W'),
                        help='one size for every config (default: per task)')
    parser.add_argument('--out', default='work_dirs/zoo_coverage.jsonl',
                        help='results, one JSON line per config (resumable)')
    parser.add_argument('--log-dir', default='work_dirs/zoo_coverage_logs',
                        help='one log per config')
    parser.add_argument('--index', default='work_dirs/zoo_coverage_index.json',
                        help='cache of the scanned configs')
    parser.add_argument('--redo-failed', action='store_true',
                        help='run again the configs that did not pass')
    parser.add_argument('--list', action='store_true',
                        help='print the selected configs and exit')
    parser.add_argument('--no-run', action='store_true',
                        help='only render --md from --out')
    parser.add_argument('--md', help='write the coverage table (markdown)')
    parser.add_argument('--single', help=argparse.SUPPRESS)  # child mode
    parser.add_argument('--host', help=argparse.SUPPRESS)
    parser.add_argument('--config', help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.single:
        _refuse_network()
        _quiet_child()
        rec = run_entry(args.host, args.config, args.img_scale)
        with open(args.single, 'w') as f:
            json.dump(rec, f)
        return
    entries = all_entries = select_entries(
        scan_configs(args.hosts, args.index))
    if args.only:
        wanted = set(args.only)
        entries = [e for e in entries if e['type'] in wanted
                   or osp.basename(e['config']) in wanted
                   or e['config'] in wanted]
        if not entries:
            sys.exit(f'--only: no type or config named {sorted(wanted)}')
    if args.list:
        for e in entries:
            print(f"{e['host']:<11} {e['kind']:<10} {e['type']:<40} "
                  f"{e['config']}  ({e['candidates']} configs)")
        return
    if not args.no_run:
        start = time.time()
        run_all(entries, args)
        print(f'wall time {time.time() - start:.0f} s')
    if args.md:
        command = ('python tools/analysis_tools/zoo_coverage.py --jobs '
                   f'{args.jobs} --out {args.out} --md {args.md}')
        with open(args.md, 'w') as f:
            f.write(markdown(all_entries, read_records(args.out), command))
        print(f'wrote {args.md}')


if __name__ == '__main__':
    main()
