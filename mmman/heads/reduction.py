"""The 1x1 channel reduction in front of a dense host head."""
from typing import Optional, Tuple

import torch.nn as nn
from mmcv.cnn import ConvModule


def channel_reduction(in_channels: int,
                      channels: Optional[int]) -> Tuple[nn.Module, int]:
    """``(module, out_channels)``: a 1x1 conv-BN-ReLU from ``in_channels`` to
    ``channels`` when that is narrower, else an identity.

    A dense host head's first 3x3 conv reads every input channel at the
    block's resolution: on Faster R-CNN R50's block outputs (512-2048
    channels at stride 8-32) the CenterNet heads cost a quarter of E2E's
    FLOPs per step (docs/benchmarks.md, "where a MAN++ step's time goes").
    The 1x1 conv in front costs ``in_channels x channels`` per pixel
    instead of ``9 x in_channels x head width`` per branch.
    """
    if channels is None or channels >= in_channels:
        return nn.Identity(), in_channels
    return ConvModule(in_channels, channels, 1,
                      norm_cfg=dict(type='BN')), channels
