"""Model configs of the tests (no mmman import: also used by plain runs)."""


NUM_CLASSES = 3


def _norm(kind):
    if kind == 'GN':
        return dict(type='GN', num_groups=4, requires_grad=True)
    return dict(type='BN', requires_grad=True)


def det_model_cfg(frozen_stages=-1, norm_eval=False):
    """MMDet RetinaNet on a ResNet-18 (8 base channels) with FPN."""
    return dict(
        type='RetinaNet',
        data_preprocessor=dict(
            type='DetDataPreprocessor',
            mean=[127.5] * 3,
            std=[127.5] * 3,
            bgr_to_rgb=False,
            pad_size_divisor=32),
        backbone=dict(
            type='ResNet',
            depth=18,
            stem_channels=8,
            base_channels=8,
            out_indices=(0, 1, 2, 3),
            frozen_stages=frozen_stages,
            norm_eval=norm_eval,
            norm_cfg=dict(type='BN', requires_grad=True)),
        neck=dict(
            type='FPN',
            in_channels=[8, 16, 32, 64],
            out_channels=16,
            start_level=1,
            add_extra_convs='on_input',
            num_outs=3),
        bbox_head=dict(
            type='RetinaHead',
            num_classes=NUM_CLASSES,
            in_channels=16,
            stacked_convs=1,
            feat_channels=16,
            anchor_generator=dict(
                type='AnchorGenerator',
                octave_base_scale=4,
                scales_per_octave=1,
                ratios=[1.0],
                strides=[8, 16, 32]),
            bbox_coder=dict(
                type='DeltaXYWHBBoxCoder',
                target_means=[.0, .0, .0, .0],
                target_stds=[1.0, 1.0, 1.0, 1.0]),
            loss_cls=dict(
                type='FocalLoss',
                use_sigmoid=True,
                gamma=2.0,
                alpha=0.25,
                loss_weight=1.0),
            loss_bbox=dict(type='L1Loss', loss_weight=1.0)),
        train_cfg=dict(
            assigner=dict(
                type='MaxIoUAssigner',
                pos_iou_thr=0.5,
                neg_iou_thr=0.4,
                min_pos_iou=0,
                ignore_iof_thr=-1),
            sampler=dict(type='PseudoSampler'),
            allowed_border=-1,
            pos_weight=-1,
            debug=False),
        test_cfg=dict(
            nms_pre=100,
            min_bbox_size=0,
            score_thr=0.05,
            nms=dict(type='nms', iou_threshold=0.5),
            max_per_img=10))


def seg_model_cfg(norm='BN', frozen_stages=-1):
    """MMSeg DeepLabV3 on a dilated ResNetV1c-18 (d8), FCN auxiliary head."""
    norm = _norm(norm)
    return dict(
        type='EncoderDecoder',
        data_preprocessor=dict(
            type='SegDataPreProcessor',
            mean=[127.5] * 3,
            std=[127.5] * 3,
            size=(64, 64),
            pad_val=0,
            seg_pad_val=255),
        backbone=dict(
            type='ResNetV1c',
            depth=18,
            stem_channels=8,
            base_channels=8,
            strides=(1, 2, 1, 1),
            dilations=(1, 1, 2, 4),
            out_indices=(0, 1, 2, 3),
            norm_cfg=norm,
            frozen_stages=frozen_stages,
            contract_dilation=True),
        decode_head=dict(
            type='ASPPHead',
            in_channels=64,
            in_index=3,
            channels=16,
            dilations=(1, 2, 3, 4),
            num_classes=NUM_CLASSES + 1,
            norm_cfg=norm,
            align_corners=False,
            loss_decode=dict(type='CrossEntropyLoss', loss_weight=1.0)),
        auxiliary_head=dict(
            type='FCNHead',
            in_channels=32,
            in_index=2,
            channels=8,
            num_convs=1,
            concat_input=False,
            num_classes=NUM_CLASSES + 1,
            norm_cfg=norm,
            align_corners=False,
            loss_decode=dict(type='CrossEntropyLoss', loss_weight=0.4)),
        train_cfg=dict(),
        test_cfg=dict(mode='whole'))


def vit_seg_model_cfg():
    """MMSeg VisionTransformer (4 blocks, 16 dims) with an FCN head."""
    return dict(
        type='EncoderDecoder',
        data_preprocessor=dict(
            type='SegDataPreProcessor',
            mean=[127.5] * 3,
            std=[127.5] * 3,
            size=(64, 64),
            seg_pad_val=255),
        backbone=dict(
            type='VisionTransformer',
            img_size=(64, 64),
            patch_size=8,
            embed_dims=16,
            num_layers=4,
            num_heads=2,
            mlp_ratio=2,
            out_indices=(1, 3),
            final_norm=True),
        decode_head=dict(
            type='FCNHead',
            in_channels=16,
            in_index=1,
            channels=8,
            num_convs=1,
            concat_input=False,
            num_classes=NUM_CLASSES + 1,
            align_corners=False,
            loss_decode=dict(type='CrossEntropyLoss', loss_weight=1.0)),
        train_cfg=dict(),
        test_cfg=dict(mode='whole'))


def _balance_at(cfg, img_scale):
    """Balance a local config's blocks at the test's image size. Plain host
    configs have no ``balance``: mmman stays unimported for them."""
    local_cfg = cfg.get('optim_wrapper', {}).get('local_cfg') or {}
    if local_cfg.get('balance') not in (None, False):
        from mmman.apis import configure_balance
        configure_balance(cfg, img_scale)


def _point_loaders(cfg, train, test, **dataset):
    """Single-process loaders (train batch 2) on ``dataset`` settings."""
    for name, pipeline in (('train_dataloader', train),
                           ('val_dataloader', test),
                           ('test_dataloader', test)):
        loader = cfg[name]
        loader.num_workers = 0
        loader.persistent_workers = False
        loader.dataset.update(pipeline=pipeline, **dataset)
    cfg.train_dataloader.batch_size = 2


def tiny_cityscapes_run(cfg, data_root, work_dir, iters=2):
    """Shrink a Cityscapes config to a few CPU iterations on tiny images.

    Keeps the model and the local-learning settings; replaces data roots,
    pipelines (no resize to 2048x1024), schedule and output paths.
    """
    cfg.work_dir = work_dir
    cfg.log_level = 'WARNING'
    cfg.model.pretrained = None
    if 'init_cfg' in cfg.model.backbone:  # random weights: none downloaded
        cfg.model.backbone.init_cfg = None
    cfg.model.data_preprocessor.size = (64, 128)
    _balance_at(cfg, (64, 128))
    if 'img_size' in cfg.model.backbone:
        cfg.model.backbone.img_size = (64, 128)
    train = [
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations'),
        dict(type='RandomFlip', prob=0.5),
        dict(type='PackSegInputs')
    ]
    test = [
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations'),
        dict(type='PackSegInputs')
    ]
    _point_loaders(cfg, train, test, data_root=data_root)
    cfg.train_cfg = dict(
        type='IterBasedTrainLoop', max_iters=iters, val_interval=iters)
    cfg.param_scheduler = []
    cfg.default_hooks.checkpoint = dict(
        type='CheckpointHook', by_epoch=False, interval=iters)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=1)
    for key in ('val_evaluator', 'test_evaluator'):
        evaluators = cfg[key] if isinstance(cfg[key], list) else [cfg[key]]
        for ev in evaluators:
            if ev['type'] == 'CityscapesMetric':
                ev['output_dir'] = f'{work_dir}/cityscapes_eval_{key}'
    return cfg


COCO_SHAPES = ('square', 'disc', 'triangle', 'cross', 'star')
# Mixed-precision wrappers and their fp32 twins: MMEngine's AmpOptimWrapper
# needs CUDA, so a CPU run of a mixed-precision config trains in fp32.
FP32_TWINS = {'AmpOptimWrapper': 'OptimWrapper',
              'LocalAmpOptimWrapper': 'LocalOptimWrapper'}


def _few_rois(model, proposals=100, rois=64, detections=20):
    """Two-stage detectors on a tiny image with a few objects: at most
    ``proposals`` RPN proposals, ``rois`` sampled RoIs per image and stage,
    ``detections`` per image (their RoI and mask heads cost the most)."""
    train, test = model.get('train_cfg') or {}, model.get('test_cfg') or {}
    if 'rpn_proposal' in train:
        train.rpn_proposal.max_per_img = proposals
    stages = train.get('rcnn') or []
    for stage in stages if isinstance(stages, list) else [stages]:
        stage.sampler.num = rois
    if 'rpn' in test and 'rcnn' in test:
        test.rpn.max_per_img = proposals
        test.rcnn.max_per_img = detections


def _fp32_without_cuda(cfg):
    import torch
    wrapper = cfg.get('optim_wrapper') or {}
    if wrapper.get('type') in FP32_TWINS and not torch.cuda.is_available():
        wrapper.type = FP32_TWINS[wrapper.type]
        for key in ('loss_scale', 'dtype'):
            wrapper.pop(key, None)


def tiny_coco_run(cfg, data_root, work_dir, iters=2, scale=128):
    """Shrink an MMDet COCO config to a few CPU iterations on tiny images.

    Keeps the model (minus pretrained weights, with 5 classes) and the
    local-learning settings; points the data at a generated COCO-format root
    (boxes, and masks for models with a mask head) and shortens schedule and
    outputs.
    The score threshold is 0: an untrained model's detections all count, so
    evaluations compare real predictions. Two-stage detectors keep fewer
    proposals, RoIs and detections (``_few_rois``); DINO gets the image size
    its queries need. Training does not validate; the tests run the val loop
    themselves. Without CUDA a mixed-precision wrapper becomes its fp32 twin.
    """
    cfg.work_dir = work_dir
    cfg.log_level = 'WARNING'
    if cfg.model.get('as_two_stage') and cfg.model.get('num_queries'):
        # DINO's encoder proposes num_queries (900) of its tokens: 224x224
        # gives 28^2 + 14^2 + 7^2 + 4^2 = 1045 over its 4 levels.
        scale = max(scale, 224)
    backbone = cfg.model.backbone
    backbone.init_cfg = None
    if 'img_size' in backbone:
        backbone.img_size = (scale, scale)
    _balance_at(cfg, (scale, scale))
    with_mask = 'mask_head' in cfg.model.get('roi_head', {})
    load = dict(type='LoadAnnotations', with_bbox=True, with_mask=with_mask)
    resize = dict(type='Resize', scale=(scale, scale), keep_ratio=True)
    train = [dict(type='LoadImageFromFile'), load, resize,
             dict(type='PackDetInputs')]
    test = [dict(type='LoadImageFromFile'), resize, load,
            dict(type='PackDetInputs', meta_keys=(
                'img_id', 'img_path', 'ori_shape', 'img_shape',
                'scale_factor'))]
    _point_loaders(cfg, train, test, data_root=data_root,
                   metainfo=dict(classes=COCO_SHAPES))
    for name in ('val_dataloader', 'test_dataloader'):
        cfg[name].batch_size = 2
    cfg.train_dataloader.pop('batch_sampler', None)  # aspect-ratio groups
    cfg.train_dataloader.sampler = dict(type='InfiniteSampler', shuffle=True)
    cfg.train_cfg = dict(
        type='IterBasedTrainLoop', max_iters=iters, val_interval=iters + 1)
    cfg.param_scheduler = []
    cfg.default_hooks.checkpoint = dict(
        type='CheckpointHook', by_epoch=False, interval=iters)
    cfg.default_hooks.logger = dict(
        type='LoggerHook', interval=1, log_metric_by_epoch=False)
    heads = [cfg.model.get('bbox_head')]
    for key in ('bbox_head', 'mask_head'):
        head = cfg.model.get('roi_head', {}).get(key)
        heads += head if isinstance(head, list) else [head]  # cascade stages
    for head in heads:
        if head is not None:
            head.num_classes = len(COCO_SHAPES)
    _fp32_without_cuda(cfg)
    test_cfg = cfg.model.test_cfg
    (test_cfg.rcnn if 'rcnn' in test_cfg else test_cfg).score_thr = 0.0
    _few_rois(cfg.model)
    cfg.log_processor = dict(by_epoch=False)
    for key in ('val_evaluator', 'test_evaluator'):
        cfg[key].ann_file = f'{data_root}/annotations/instances_val2017.json'
    return cfg


NARROW_BACKBONES = ('ResNet', 'ResNetV1c', 'ResNetV1d', 'ResNeXt')


def tiny_cls_run(cfg, data_root, work_dir, iters=2):
    """Shrink an MMPretrain config to a few CPU iterations on tiny data.

    Keeps depth, units and the local-learning settings. SVHN / STL-10
    configs read generated files in the official formats
    (``data_root/svhn``, ``data_root/stl10``; STL-10 resized to 32x32); the
    others (CIFAR-10, whose reader checks the official MD5s, and ImageNet) a
    generated ``CustomDataset`` folder of 32x32 images (``data_root/shapes``).
    ImageNet ResNets are narrowed to 8 base channels (ResNeXt: 32 groups of
    width 1), VGG's classifier inside the backbone, which needs 224x224
    inputs, becomes global pooling + ``LinearClsHead``, and Swin pads its
    feature maps to its window.
    """
    cfg.work_dir = work_dir
    cfg.log_level = 'WARNING'
    cfg.randomness = dict(seed=0)
    model = cfg.model
    backbone = model.backbone
    if backbone.type in NARROW_BACKBONES:
        backbone.update(stem_channels=8, base_channels=8)
        if backbone.type == 'ResNeXt':
            backbone.width_per_group = 1
        model.head.in_channels = 256
    elif backbone.type == 'SwinTransformer':
        # 32x32: the last stages' maps are smaller than the 7x7 window,
        # which MMPretrain pads when asked (no parameter changes)
        backbone.pad_small_map = True
    elif backbone.type == 'VGG':
        backbone.update(num_classes=-1, out_indices=(4, ))
        model.neck = dict(type='GlobalAveragePooling')
        model.head.update(type='LinearClsHead', num_classes=1000,
                          in_channels=512)
    kind = cfg.train_dataloader.dataset.type
    for name in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg[name]
        loader.num_workers = 0
        loader.persistent_workers = False
        # 4, not 2, training images: DGL's BN1d over two near-identical
        # images blows the weights up within 2 iterations (DGLAuxHead).
        loader.batch_size = 4
        if kind in ('SVHN', 'STL10'):
            loader.dataset.data_root = f'{data_root}/{kind.lower()}'
            if kind == 'STL10':  # 96x96 -> 32x32: the ResNet-110s cost less
                loader.dataset.pipeline = [
                    dict(type='Resize', scale=(32, 32))
                ] + [t for t in loader.dataset.pipeline
                     if t['type'] != 'RandomCrop']
            continue
        split = 'train' if name == 'train_dataloader' else 'val'
        flip = [dict(type='RandomFlip', prob=0.5, direction='horizontal')]
        loader.dataset = dict(
            type='CustomDataset',
            data_root=f'{data_root}/shapes',
            data_prefix=split,
            pipeline=[dict(type='LoadImageFromFile')] +
            (flip if split == 'train' else []) + [dict(type='PackInputs')])
    cfg.train_dataloader.sampler = dict(type='InfiniteSampler', shuffle=True)
    cfg.train_cfg = dict(
        type='IterBasedTrainLoop', max_iters=iters, val_interval=iters + 1)
    cfg.param_scheduler = []
    cfg.default_hooks.checkpoint = dict(
        type='CheckpointHook', by_epoch=False, interval=iters)
    cfg.default_hooks.logger = dict(
        type='LoggerHook', interval=1, log_metric_by_epoch=False)
    cfg.log_processor = dict(by_epoch=False)
    return cfg
