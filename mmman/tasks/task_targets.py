"""Image-level targets read from the data samples of MMPretrain, MMDet, MMSeg.

A local block early in the network cannot solve the host task, but it can
learn which classes an image shows: the single label of a classification
sample, the set of box labels of a detection sample, or the set of classes
present in a segmentation map.
"""
from collections import Counter
from typing import Optional, Sequence, Tuple

import torch
import torch.nn as nn

from mmman.local.local_targets import LocalTargets


def image_level_targets(data_samples: Sequence,
                        num_classes: int,
                        ignore_index: int = 255) -> Tuple[torch.Tensor, str]:
    """Targets for an image-level auxiliary classifier.

    Returns:
        tuple: ``(targets, kind)``: ``'index'``: class indices of shape (N,)
        (single-label samples); ``'soft'``: the class probabilities of shape
        (N, C) that MMPretrain's batch augments (Mixup, CutMix) set as
        ``gt_score``, which the host head learns instead of ``gt_label``;
        ``'multi_hot'``: the (N, C) set of classes present (multi-label
        samples, detection boxes, segmentation maps).
    """
    if not data_samples:
        raise ValueError('local learning needs the data samples of the batch')
    sample = data_samples[0]
    if 'gt_score' in sample and 'gt_label' in sample and all(
            s.gt_label.numel() == 1 for s in data_samples):
        # Mixed (or label-smoothed) single-label samples: MMPretrain's
        # ClsHead trains on gt_score whenever it is set.
        return torch.stack([s.gt_score for s in data_samples]).float(), 'soft'
    if 'gt_label' in sample:
        labels = [s.gt_label.reshape(-1) for s in data_samples]
        if all(len(label) == 1 for label in labels):
            return torch.cat(labels).long(), 'index'
        present = labels  # multi-label classification samples
    elif 'gt_instances' in sample:
        present = [s.gt_instances.labels for s in data_samples]
    elif 'gt_sem_seg' in sample:
        present = []
        for s in data_samples:
            classes = s.gt_sem_seg.data.unique()
            present.append(classes[(classes != ignore_index)
                                   & (classes < num_classes)])
    else:
        raise ValueError(
            'local learning: the data samples carry none of gt_label, '
            f'gt_instances, gt_sem_seg (fields: {list(sample.keys())}).')
    device = present[0].device
    targets = torch.zeros(len(present), num_classes, device=device)
    for i, labels in enumerate(present):
        targets[i, labels.long()] = 1.0
    return targets, 'multi_hot'


class TaskTargets:
    """Task adapter: the :class:`~mmman.local.LocalTargets` of a batch.

    Image-level labels (:func:`image_level_targets`), the data samples for
    dense task heads, and the normalisation of the inputs so that objectives
    can see the image in [0, 1] (InfoPro's reconstruction target).

    Args:
        num_classes (int): Number of classes.
        ignore_index (int): Label ignored in segmentation maps.
        mean, std (Tensor, optional): The data preprocessor's normalisation.
    """

    def __init__(self,
                 num_classes: int,
                 ignore_index: int = 255,
                 mean: Optional[torch.Tensor] = None,
                 std: Optional[torch.Tensor] = None):
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.mean = mean
        self.std = std

    @classmethod
    def from_model(cls, model: nn.Module,
                   num_classes: Optional[int]) -> 'TaskTargets':
        """Read ``ignore_index`` and the normalisation off the model."""
        head = getattr(model, 'decode_head', None)
        ignore = getattr(head, 'ignore_index', 255)
        pre = getattr(model, 'data_preprocessor', None)
        normalised = getattr(pre, '_enable_normalize', False)
        mean = getattr(pre, 'mean', None) if normalised else None
        std = getattr(pre, 'std', None) if normalised else None
        return cls(num_classes, ignore if isinstance(ignore, int) else 255,
                   mean, std)

    def __call__(self, data_samples: Sequence,
                 inputs: Optional[torch.Tensor] = None) -> LocalTargets:
        try:
            labels, kind = image_level_targets(data_samples,
                                               self.num_classes,
                                               self.ignore_index)
        except ValueError:  # no image-level labels: dense heads only
            labels, kind = None, 'index'
        return LocalTargets(
            data_samples=data_samples,
            labels=labels,
            multi_label=kind == 'multi_hot',
            soft=kind == 'soft',
            inputs=inputs,
            mean=self.mean,
            std=self.std)


def infer_num_classes(model) -> int:
    """Number of classes of an MMDet/MMSeg/MMPretrain model's main head.

    A list of heads (Cascade R-CNN's ``roi_head.bbox_head`` stages, MMSeg's
    cascade decode heads) gives its classes when every head agrees; a model
    with none of the usual heads, the count most of its modules hold.
    """
    candidates = ('head', 'decode_head', 'bbox_head', 'roi_head.bbox_head',
                  'panoptic_head')  # MaskFormer / Mask2Former: things+stuff
    for path in candidates:
        module = model
        for part in path.split('.'):
            module = getattr(module, part, None)
            if module is None:
                break
        heads = list(module) if isinstance(module,
                                           (list, tuple, nn.ModuleList)) \
            else [module]
        nums = {getattr(h, 'num_classes', None) for h in heads}
        if len(nums) == 1 and isinstance(next(iter(nums)), int):
            return nums.pop()
        if len(nums - {None}) > 1:
            break  # heads that disagree: the user says which
    else:
        found = _most_common_classes(model)
        if found is not None:
            return found
    raise ValueError(
        'local learning: cannot infer num_classes from the model; set it in '
        '`local_cfg.aux_head.num_classes`.')


def _most_common_classes(model) -> Optional[int]:
    """Any other layout (SOLO's mask_head, a semi-supervised detector's
    student, LeNet's classifier inside the backbone): the class count the
    model's modules agree on most."""
    found = Counter(
        m.num_classes for m in model.modules()
        if isinstance(getattr(m, 'num_classes', None), int)
        and not isinstance(m.num_classes, bool) and m.num_classes > 0)
    return found.most_common(1)[0][0] if found else None
