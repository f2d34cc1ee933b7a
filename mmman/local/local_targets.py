"""What a local objective learns from, handed in by a task adapter.

``mmman.local`` knows no task: a task adapter (``mmman.tasks.TaskTargets``)
reads the batch's data samples once and fills a :class:`LocalTargets`. Heads
of ``mmman.local`` declare ``uses_local_targets = True`` and receive it;
dense task heads (MMSeg/MMDet/MMPretrain heads) receive the raw data samples.
"""
from typing import Optional, Sequence

import torch
import torch.nn.functional as F


class LocalTargets:
    """Targets of one batch.

    Args:
        data_samples (list, optional): The batch's data samples.
        labels (Tensor, optional): Class indices ``(N,)`` (single-label), a
            multi-hot ``(N, C)`` float tensor (``multi_label=True``) or
            ``(N, C)`` class probabilities (``soft=True``).
        multi_label (bool): ``labels`` is multi-hot (detection boxes,
            segmentation maps: the classes present in an image).
        soft (bool): ``labels`` are class probabilities that sum to one per
            image: MMPretrain's ``gt_score`` after Mixup/CutMix (the host
            head learns those, so the local objectives do too).
        inputs (Tensor, optional): The preprocessed (normalised) batch.
        mean, std (Tensor, optional): ``(C, 1, 1)`` normalisation of
            ``inputs``; with them :attr:`image` is the image in ``[0, 1]``.
    """

    def __init__(self,
                 data_samples: Optional[Sequence] = None,
                 labels: Optional[torch.Tensor] = None,
                 multi_label: bool = False,
                 soft: bool = False,
                 inputs: Optional[torch.Tensor] = None,
                 mean: Optional[torch.Tensor] = None,
                 std: Optional[torch.Tensor] = None):
        self.data_samples = data_samples
        self.labels = labels
        if multi_label and soft:
            raise ValueError('LocalTargets: labels are multi-hot or soft, '
                             'not both.')
        self.multi_label = multi_label
        self.soft = soft
        self.inputs = inputs
        self.mean = mean
        self.std = std
        self._image = None

    def require(self, name: str):
        """The field ``name``; a clear error when the adapter left it out."""
        value = getattr(self, name)
        if value is None:
            raise ValueError(f'local learning: this objective needs `{name}` '
                             'targets, which the task adapter did not give.')
        return value

    @property
    def image(self) -> torch.Tensor:
        """The de-normalised input batch in ``[0, 1]`` (InfoPro's target)."""
        if self._image is None:
            x = self.require('inputs').detach().float()
            if self.mean is not None and self.std is not None:
                x = x * self.std.to(x) + self.mean.to(x)
            self._image = (x / 255.0).clamp(0.0, 1.0)
        return self._image

    def one_hot(self, num_classes: int) -> torch.Tensor:
        """``(N, C)`` float: one-hot labels, the multi-hot class set or the
        soft class probabilities."""
        labels = self.require('labels')
        if self.multi_label or self.soft:
            return labels.float()
        return F.one_hot(labels.long(), num_classes).float()

    def class_loss(self, logits: torch.Tensor) -> torch.Tensor:
        """Cross-entropy on single labels or class probabilities; binary
        cross-entropy on a class set (where the seeds use CE on CIFAR/ImageNet
        labels)."""
        labels = self.require('labels').to(logits.device)
        if self.soft:
            return F.cross_entropy(logits, labels.to(logits.dtype))
        if self.multi_label:
            return F.binary_cross_entropy_with_logits(logits, labels.float())
        return F.cross_entropy(logits, labels.long())
