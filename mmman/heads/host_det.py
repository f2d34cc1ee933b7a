"""Local objective of a detection block: an MMDet dense head."""
from typing import Dict, Optional, Sequence

import torch
from mmengine.model import BaseModule
from mmengine.registry import MODELS

from .host_seg import tokens_to_map
from .reduction import channel_reduction
from .shared_trunk_centernet import SharedTrunkCenterNetHead  # noqa: F401


@MODELS.register_module()
class DenseDetAuxHead(BaseModule):
    """An MMDet dense head (CenterNet by default) as local objective.

    CenterNet regresses Gaussian heatmaps of the ground-truth box centres,
    box sizes and offsets at whatever stride the block's features have, so
    it fits every block of a detection backbone.

    Args:
        in_channels (int): Channels of the block's (eta-transformed) features.
        num_classes (int): Number of classes.
        head (dict): Head config; ``in_channels`` and ``num_classes`` are
            filled in, ``feat_channels`` defaults to ``min(in_channels, 128)``
            (after the reduction). The type defaults to
            :class:`SharedTrunkCenterNetHead`, whose three branches share one
            3x3 conv: 0.88x of the step's FLOPs on Faster R-CNN R50 MAN++
            K=4 and the host head's accuracy (docs/results.md, "Cheaper
            auxiliary heads?"); ``dict(type='mmdet.CenterNetHead')`` gives
            each branch its own.
        reduce_channels (int, optional): A 1x1 conv-BN-ReLU first reduces
            wider inputs to this many channels: cheaper (Faster R-CNN R50
            MAN++ K=4 at 64 with a conv per branch: 0.83x of the step's
            FLOPs) but a weaker local objective (docs/results.md, "Cheaper
            auxiliary heads?").
            Defaults to None: the head reads the full width.
        loss_weight (float): Multiplies every loss of the head.
        tokens (bool): Inputs are ``(N, L, C)`` transformer tokens; they are
            laid on the patch grid of the padded batch first.
    """

    def __init__(self,
                 in_channels: int,
                 num_classes: int,
                 head: Optional[dict] = None,
                 reduce_channels: Optional[int] = None,
                 loss_weight: float = 1.0,
                 tokens: bool = False,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg)
        self.tokens = tokens
        self.loss_weight = loss_weight
        self.reduce, in_channels = channel_reduction(in_channels,
                                                     reduce_channels)
        cfg = dict(type='SharedTrunkCenterNetHead')
        cfg.update(head or {})
        cfg.setdefault('feat_channels', min(in_channels, 128))
        cfg.update(in_channels=in_channels, num_classes=num_classes)
        self.head = MODELS.build(cfg)
        # The host head's own initialisation, now: nothing calls it later
        # (a Runner's init_weights reaches the model only, and these heads
        # live outside it). CenterNet's sets the heatmap bias to the 0.1
        # prior (-2.19) and the wh/offset convs to N(0, 0.001). Left at
        # PyTorch's default, every heatmap pixel starts at p = 0.5: on 2 x
        # 800x1333 images the heatmap loss of Faster R-CNN R50 MAN++ K=4
        # started at 729 (x0.1) instead of 4.6 with 100x the gradient, and
        # lr 0.02 drove it to NaN in 5 steps (docs/methods.md,
        # tests/test_det_local_stability.py).
        self.head.init_weights()

    def loss(self, x: torch.Tensor,
             data_samples: Sequence) -> Dict[str, torch.Tensor]:
        if self.tokens:
            x = tokens_to_map(x, data_samples[0].batch_input_shape)
        losses = self.head.loss((self.reduce(x), ), data_samples)
        return {k: v * self.loss_weight for k, v in losses.items()}
