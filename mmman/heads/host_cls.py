"""Local objective of a classification block: an MMPretrain head."""
from typing import Dict, Optional, Sequence

import torch
from mmengine.model import BaseModule
from mmengine.registry import MODELS


@MODELS.register_module()
class ClsAuxHead(BaseModule):
    """MMPretrain's ``GlobalAveragePooling`` + ``LinearClsHead`` as local
    objective.

    The host head computes the cross-entropy on the samples' ``gt_label``
    (its ``loss`` config, label smoothing included, applies). Its loss is
    reported as ``loss_cls``.

    Args:
        in_channels (int): Channels of the block's (eta-transformed) features.
        num_classes (int): Number of classes.
        head (dict): Head config; ``in_channels`` and ``num_classes`` are
            filled in. Defaults to ``dict(type='mmpretrain.LinearClsHead')``.
        neck (dict): Pooling before the head. Defaults to
            ``dict(type='mmpretrain.GlobalAveragePooling')`` (over the
            tokens with ``tokens=True``).
        tokens (bool): Inputs are ``(N, L, C)`` transformer tokens; they are
            pooled over the tokens.
    """

    def __init__(self,
                 in_channels: int,
                 num_classes: int,
                 head: Optional[dict] = None,
                 neck: Optional[dict] = None,
                 tokens: bool = False,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg)
        self.tokens = tokens
        self.neck = MODELS.build(neck or dict(
            type='mmpretrain.GlobalAveragePooling', dim=1 if tokens else 2))
        cfg = dict(type='mmpretrain.LinearClsHead')
        cfg.update(head or {})
        cfg.update(in_channels=in_channels, num_classes=num_classes)
        self.head = MODELS.build(cfg)

    def loss(self, x: torch.Tensor,
             data_samples: Sequence) -> Dict[str, torch.Tensor]:
        if self.tokens:  # (N, L, C) -> (N, C, L): pooled over the tokens
            x = x.transpose(1, 2)
        losses = dict(self.head.loss(self.neck((x, )), data_samples))
        losses['loss_cls'] = losses.pop('loss')
        return losses
