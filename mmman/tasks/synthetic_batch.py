"""Synthetic training batches of a given size for MMDet / MMSeg /
MMPretrain models."""
from typing import Optional, Tuple

import torch

from .task_kind import model_task
from .task_targets import infer_num_classes


def synthetic_batch(model,
                    batch_size: int,
                    img_scale: Tuple[int, int],
                    seed: int = 0,
                    num_boxes: int = 8) -> dict:
    """Random uint8 images of ``img_scale`` (H, W) with random targets.

    Detection samples get ``num_boxes`` boxes (no ignored ones), bitmap
    masks when the model has a mask head (Mask R-CNN, SOLO, RTMDet-Ins,
    MaskFormer), a semantic map when it learns from one (panoptic stuff,
    HTC's semantic branch) and proposals when it has no RPN (Fast R-CNN);
    segmentation samples a blocky label map with an ignored (255) border
    and its edges (as MMSeg's ``GenerateEdge``);
    classification samples one label.
    """
    g = torch.Generator().manual_seed(seed)
    height, width = img_scale
    task = model_task(model)
    num_classes = (_det_classes(model)[0]
                   if task == 'det' else _label_classes(model))
    channels = _image_channels(model)
    inputs, samples = [], []
    for _ in range(batch_size):
        inputs.append(
            torch.randint(
                0, 256, (channels, height, width), generator=g,
                dtype=torch.uint8))
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


def _image_channels(model) -> int:
    """The channels the model's data preprocessor normalises (its
    ``(C, 1, 1)`` mean: 1 for MNIST's LeNet-5), else 3."""
    mean = getattr(getattr(model, 'data_preprocessor', None), 'mean', None)
    if isinstance(mean, torch.Tensor) and mean.dim() == 3:
        return int(mean.shape[0])
    return 3


def _det_classes(model) -> Tuple[int, int]:
    """(things, stuff) classes of a detector; stuff only when panoptic."""
    head = getattr(model, 'panoptic_head', None) or getattr(
        model, 'semantic_head', None)  # MaskFormer / PanopticFPN
    if head is not None and hasattr(head, 'num_things_classes'):
        return head.num_things_classes, head.num_stuff_classes
    return _label_classes(model), 0


def _label_classes(model) -> int:
    """Classes to draw labels from: the main head's, else the first module
    that has any (SOLO's mask head, a classifier inside LeNet's backbone,
    the student of a semi-supervised detector)."""
    try:
        return infer_num_classes(model)
    except ValueError:
        for _, module in model.named_modules():
            num = getattr(module, 'num_classes', None)
            if isinstance(num, int) and not isinstance(num, bool) and num > 0:
                return num
        raise


def _semantic_labels(model) -> Optional[Tuple[int, int]]:
    """The label range [low, high) of a detector's semantic map: stuff after
    the things (panoptic), or the classes of HTC's / SCNet's semantic
    branch; None when it learns from none."""
    things, stuff = _det_classes(model)
    if stuff:
        return things, things + stuff
    roi_head = getattr(model, 'roi_head', None)
    if getattr(roi_head, 'with_semantic', False):
        return 0, roi_head.semantic_head.num_classes
    return None


def _needs_masks(model) -> bool:
    """Whether a detector's heads learn from instance masks."""
    if getattr(model, 'with_mask', False) or hasattr(model, 'panoptic_head'):
        return True
    from mmdet.models.dense_heads import RTMDetInsHead
    return isinstance(getattr(model, 'bbox_head', None), RTMDetInsHead)


def _blocky_labels(height, width, num_classes, g, low=0):
    """A (1, H, W) map of 32x32 blocks of labels in [low, num_classes),
    its 4-pixel left border ignored (255)."""
    coarse = torch.randint(
        low, num_classes, (1, max(height // 32, 1), max(width // 32, 1)),
        generator=g)
    label = torch.nn.functional.interpolate(
        coarse[None].float(), size=(height, width), mode='nearest')[0].long()
    label[:, :, :4] = 255
    return label


def _det_sample(model, meta, num_boxes, num_classes, g):
    from mmdet.structures import DetDataSample
    from mmdet.structures.mask import BitmapMasks
    from mmengine.structures import InstanceData, PixelData
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
    if _needs_masks(model):
        masks = torch.zeros(num_boxes, height, width, dtype=torch.uint8)
        for i, (x1, y1, x2, y2) in enumerate(boxes.long().tolist()):
            masks[i, y1:y2, x1:x2] = 1
        instances.masks = BitmapMasks(masks.numpy(), height, width)
    sample = DetDataSample(metainfo=meta)
    sample.gt_instances = instances
    # As MMDet's PackDetInputs: the (here empty) ignored boxes, always.
    sample.ignored_instances = InstanceData(
        bboxes=boxes.new_zeros(0, 4), labels=torch.zeros(0, dtype=torch.long))
    if getattr(model, 'with_rpn', True) is False:  # Fast R-CNN: given ones
        jitter = (torch.rand(num_boxes, 4, generator=g) - 0.5) * 8
        sample.proposals = InstanceData(
            bboxes=(boxes + jitter).clamp(min=0),
            scores=torch.rand(num_boxes, generator=g))
    labels = _semantic_labels(model)
    if labels is not None:
        low, high = labels
        sample.gt_sem_seg = PixelData(
            sem_seg=_blocky_labels(height, width, high, g, low))
    return sample


def _seg_sample(meta, num_classes, g):
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    height, width = meta['img_shape']
    sample = SegDataSample(metainfo=meta)
    label = _blocky_labels(height, width, num_classes, g)
    sample.gt_sem_seg = PixelData(data=label)
    sample.gt_edge_map = PixelData(data=_edges(label))  # PIDNet learns them
    return sample


def _edges(label, ignore_index=255):
    """MMSeg's ``GenerateEdge``: 1 where a pixel's label differs from its
    neighbour's below, left, up-left or up-right (ignored pixels aside),
    widened to 3 pixels."""
    lab = label[0]
    h, w = lab.shape
    edge = torch.zeros(h, w, dtype=torch.bool)
    rows, cols = (slice(1, h), slice(0, h - 1)), (slice(0, w - 1), slice(1, w))
    pairs = [((rows[0], slice(None)), (rows[1], slice(None))),
             ((slice(None), cols[0]), (slice(None), cols[1])),
             ((rows[1], cols[0]), (rows[0], cols[1])),
             ((rows[1], cols[1]), (rows[0], cols[0]))]
    for here, there in pairs:
        a, b = lab[here], lab[there]
        edge[here] |= (a != b) & (a != ignore_index) & (b != ignore_index)
    edge = torch.nn.functional.max_pool2d(
        edge[None, None].float(), 3, stride=1, padding=1)[0]
    return edge.long()


def _cls_sample(meta, num_classes, g):
    from mmpretrain.structures import DataSample
    label = int(torch.randint(0, num_classes, (1, ), generator=g))
    return DataSample(metainfo=meta).set_gt_label(label)
