"""Image-level targets read from the data samples of MMPretrain, MMDet, MMSeg.

A local block early in the network cannot solve the host task, but it can
learn which classes an image shows: the single label of a classification
sample, the set of box labels of a detection sample, or the set of classes
present in a segmentation map.
"""
from typing import Sequence, Tuple

import torch


def image_level_targets(data_samples: Sequence,
                        num_classes: int,
                        ignore_index: int = 255) -> Tuple[torch.Tensor, bool]:
    """Targets for an image-level auxiliary classifier.

    Returns:
        tuple: ``(targets, multi_label)``: class indices of shape (N,) for
        single-label samples, else a multi-hot float tensor of shape (N, C).
    """
    if not data_samples:
        raise ValueError('local learning needs the data samples of the batch')
    sample = data_samples[0]
    if 'gt_label' in sample:
        labels = [s.gt_label.reshape(-1) for s in data_samples]
        if all(len(label) == 1 for label in labels):
            return torch.cat(labels).long(), False
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
    return targets, True


def infer_num_classes(model) -> int:
    """Number of classes of an MMDet/MMSeg/MMPretrain model's main head."""
    candidates = ('head', 'decode_head', 'bbox_head', 'roi_head.bbox_head')
    for path in candidates:
        module = model
        for part in path.split('.'):
            module = getattr(module, part, None)
            if module is None:
                break
        if isinstance(module, (list, tuple)) or module is None:
            continue
        num = getattr(module, 'num_classes', None)
        if isinstance(num, int):
            return num
    raise ValueError(
        'local learning: cannot infer num_classes from the model; set it in '
        '`local_cfg.aux_head.num_classes`.')
