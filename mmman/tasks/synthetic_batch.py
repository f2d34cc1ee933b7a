"""Synthetic training batches of a given size for MMDet / MMSeg /
MMPretrain models."""
from typing import Tuple

import torch

from .task_targets import infer_num_classes


def _task(model) -> str:
    for task, module, cls in (('det', 'mmdet.models.detectors',
                                'BaseDetector'),
                              ('seg', 'mmseg.models.segmentors',
                               'BaseSegmentor'),
                              ('cls', 'mmpretrain.models.classifiers',
                               'BaseClassifier')):
        try:
            base = getattr(__import__(module, fromlist=[cls]), cls)
        except ImportError:
            continue
        if isinstance(model, base):
            return task
    raise TypeError(f'no synthetic batch for {type(model).__name__}: '
                    'MMDet detectors, MMSeg segmentors and MMPretrain '
                    'classifiers are supported.')


def synthetic_batch(model,
                    batch_size: int,
                    img_scale: Tuple[int, int],
                    seed: int = 0,
                    num_boxes: int = 8) -> dict:
    """Random uint8 images of ``img_scale`` (H, W) with random targets.

    Detection samples get ``num_boxes`` boxes (and bitmap masks when the
    model has a mask head); segmentation samples a blocky label map with an
    ignored (255) border; classification samples one label.
    """
    g = torch.Generator().manual_seed(seed)
    height, width = img_scale
    num_classes = infer_num_classes(model)
    task = _task(model)
    inputs, samples = [], []
    for _ in range(batch_size):
        inputs.append(
            torch.randint(
                0, 256, (3, height, width), generator=g, dtype=torch.uint8))
        meta = dict(
            img_shape=(height, width),
            ori_shape=(height, width),
            scale_factor=(1.0, 1.0))
        if task == 'det':
            samples.append(_det_sample(model, meta, num_boxes, num_classes,
                                       g))
        elif task == 'seg':
            samples.append(_seg_sample(meta, num_classes, g))
        else:
            samples.append(_cls_sample(meta, num_classes, g))
    return dict(inputs=inputs, data_samples=samples)


def _det_sample(model, meta, num_boxes, num_classes, g):
    from mmdet.structures import DetDataSample
    from mmdet.structures.mask import BitmapMasks
    from mmengine.structures import InstanceData
    height, width = meta['img_shape']
    xy = torch.rand(num_boxes, 2, generator=g) * torch.tensor(
        [width * 0.8, height * 0.8])
    wh = (torch.rand(num_boxes, 2, generator=g) * 0.4 + 0.05) * torch.tensor(
        [width, height])
    boxes = torch.cat([xy, (xy + wh).clamp(max=torch.tensor(
        [width - 1.0, height - 1.0]))], dim=1)
    instances = InstanceData(
        bboxes=boxes,
        labels=torch.randint(0, num_classes, (num_boxes, ), generator=g))
    if getattr(model, 'with_mask', False):
        masks = torch.zeros(num_boxes, height, width, dtype=torch.uint8)
        for i, (x1, y1, x2, y2) in enumerate(boxes.long().tolist()):
            masks[i, y1:y2, x1:x2] = 1
        instances.masks = BitmapMasks(masks.numpy(), height, width)
    sample = DetDataSample(metainfo=meta)
    sample.gt_instances = instances
    return sample


def _seg_sample(meta, num_classes, g):
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    height, width = meta['img_shape']
    coarse = torch.randint(
        0, num_classes, (1, max(height // 32, 1), max(width // 32, 1)),
        generator=g)
    label = torch.nn.functional.interpolate(
        coarse[None].float(), size=(height, width), mode='nearest')[0].long()
    label[:, :, :4] = 255
    sample = SegDataSample(metainfo=meta)
    sample.gt_sem_seg = PixelData(data=label)
    return sample


def _cls_sample(meta, num_classes, g):
    from mmpretrain.structures import DataSample
    label = int(torch.randint(0, num_classes, (1, ), generator=g))
    return DataSample(metainfo=meta).set_gt_label(label)
