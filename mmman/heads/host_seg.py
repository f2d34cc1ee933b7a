"""Local objective of a segmentation block: an MMSeg decode head."""
import math
from typing import Dict, Optional, Sequence

import torch
from mmengine.model import BaseModule
from mmengine.registry import MODELS

from .reduction import channel_reduction


def tokens_to_map(x: torch.Tensor, batch_input_shape) -> torch.Tensor:
    """(N, L, C) transformer tokens -> (N, C, h, w) map.

    The grid has the aspect ratio of the padded input; leading extra tokens
    (class / distillation tokens, at most 2) are dropped.
    """
    n, length, c = x.shape
    height, width = batch_input_shape
    for extra in range(3):
        m = length - extra
        h = round(math.sqrt(m * height / width))
        if h > 0 and m % h == 0 and abs(h * width - (m // h) * height) <= (
                height + width) / 8:
            return x[:, extra:].transpose(1, 2).reshape(n, c, h, m // h)
    raise ValueError(f'cannot lay {length} tokens on a grid for an input of '
                     f'{height}x{width}.')


@MODELS.register_module()
class DecodeAuxHead(BaseModule):
    """An MMSeg decode head (``FCNHead`` by default) as local objective.

    The host head resizes its logits to the label map, ignores label 255 and
    reports ``loss_ce`` and ``acc_seg``.

    Args:
        in_channels (int): Channels of the block's (eta-transformed) features.
        num_classes (int): Number of classes.
        head (dict): Decode head config; ``in_channels``, ``num_classes``,
            ``in_index`` and (if unset) ``channels``, ``min(in_channels,
            256)`` after the reduction, are filled in.
        reduce_channels (int, optional): A 1x1 conv-BN-ReLU first reduces
            wider inputs to this many channels: cheaper (DeepLabV3 R50-D8
            MAN++ K=4 at 64: 0.91x of the step's FLOPs) but, as measured on
            detection, a weaker local objective (docs/results.md, "Cheaper
            auxiliary heads?").
            Defaults to None: the head reads the full width.
        tokens (bool): Inputs are ``(N, L, C)`` transformer tokens.
    """

    def __init__(self,
                 in_channels: int,
                 num_classes: int,
                 head: Optional[dict] = None,
                 reduce_channels: Optional[int] = None,
                 tokens: bool = False,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg)
        self.reduce, in_channels = channel_reduction(in_channels,
                                                     reduce_channels)
        cfg = dict(
            type='mmseg.FCNHead',
            num_convs=1,
            concat_input=False,
            dropout_ratio=0.1,
            norm_cfg=dict(type='BN', requires_grad=True),
            align_corners=False,
            loss_decode=dict(type='mmseg.CrossEntropyLoss', loss_weight=1.0))
        cfg.update(head or {})
        cfg.setdefault('channels', min(in_channels, 256))
        cfg.update(in_channels=in_channels, num_classes=num_classes,
                   in_index=0)
        self.head = MODELS.build(cfg)
        self.tokens = tokens

    def loss(self, x: torch.Tensor,
             data_samples: Sequence) -> Dict[str, torch.Tensor]:
        if self.tokens:
            # The padded label map has the padded input's shape.
            x = tokens_to_map(x, data_samples[0].gt_sem_seg.shape)
        return self.head.loss([self.reduce(x)], data_samples, train_cfg={})
