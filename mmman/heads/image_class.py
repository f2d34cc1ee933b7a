"""The image-level auxiliary classifier: mmman's default local objective."""
from typing import Dict, Optional

import torch
import torch.nn as nn
from mmcv.cnn import build_norm_layer
from mmengine.model import BaseModule
from mmengine.registry import MODELS

from mmman.local.local_targets import LocalTargets


@MODELS.register_module()
class ImageClassAuxHead(BaseModule):
    """Cheap image-level auxiliary classifier on a block's features.

    ``[conv1x1-BN-ReLU] -> global average pool -> FC-ReLU -> FC``; on ViT
    tokens ``(N, L, C)`` it is ``LayerNorm -> token mean -> FC-ReLU -> FC``.
    The loss is cross-entropy on single labels (classification) and binary
    cross-entropy on the classes present (detection boxes, segmentation map),
    as given by the task adapter (:class:`~mmman.local.LocalTargets`).

    Args:
        in_channels (int): Channels of the input features.
        num_classes (int): Number of classes.
        channels (int, optional): Width of the conv and hidden FC. Defaults
            to ``min(in_channels, 256)``: the head must stay cheap next to
            the block it trains.
        loss_weight (float): Weight of the local loss. Defaults to 1.0.
        tokens (bool): Inputs are ``(N, L, C)`` transformer tokens.
        norm_cfg (dict): Norm after the conv. Defaults to ``dict(type='BN')``.
    """
    uses_local_targets = True  # gets LocalTargets, not data samples

    def __init__(self,
                 in_channels: int,
                 num_classes: int,
                 channels: Optional[int] = None,
                 loss_weight: float = 1.0,
                 tokens: bool = False,
                 norm_cfg: dict = dict(type='BN'),
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg)
        channels = channels or min(in_channels, 256)
        self.num_classes = num_classes
        self.loss_weight = loss_weight
        if tokens:
            self.embed = nn.Sequential(
                nn.LayerNorm(in_channels), nn.Linear(in_channels, channels))
        else:
            self.embed = nn.Sequential(
                nn.Conv2d(in_channels, channels, 1, bias=False),
                build_norm_layer(norm_cfg, channels)[1],
                nn.ReLU(inplace=True))
        self.fc = nn.Sequential(
            nn.Linear(channels, channels), nn.ReLU(inplace=True),
            nn.Linear(channels, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.embed(x)
        x = x.mean(dim=(2, 3)) if x.dim() == 4 else x.mean(dim=1)
        return self.fc(x)

    def loss(self, x: torch.Tensor,
             targets: LocalTargets) -> Dict[str, torch.Tensor]:
        loss = targets.class_loss(self(x))
        return dict(loss_cls=loss * self.loss_weight)
