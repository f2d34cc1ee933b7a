"""CenterNet with one 3x3 conv shared by its three branches."""
from typing import List, Tuple

import torch
import torch.nn as nn
from mmcv.cnn import DepthwiseSeparableConvModule
from mmdet.models.dense_heads import CenterNetHead
from mmengine.registry import MODELS

from .centernet_targets import centernet_targets


@MODELS.register_module()
class SharedTrunkCenterNetHead(CenterNetHead):
    """MMDet's ``CenterNetHead`` whose heatmap, size and offset branches share
    their 3x3 conv.

    The host head gives each branch its own ``3x3 conv (in -> feat) - ReLU -
    1x1 conv``; on wide block outputs those three 3x3 convs are nearly all
    of an auxiliary head's cost (on Faster R-CNN R50 MAN++ K=4, about a
    quarter of E2E's FLOPs per step; docs/benchmarks.md). Here one
    ``3x3 conv - ReLU`` feeds three 1x1 convs: the same receptive field and
    hidden width for a third of the 3x3 work. Targets, losses and decoding
    are the host's.

    Args:
        in_channels (int): Channels of the input feature map.
        feat_channels (int): Channels of the shared hidden map.
        separable (bool): The shared 3x3 conv is depthwise, then a 1x1 conv
            to ``feat_channels`` (MMCV's ``DepthwiseSeparableConvModule``):
            the same receptive field and width for about ``1/9`` of the
            trunk's work on wide inputs, but -0.028 bbox mAP on the
            pretrained detection benchmark at K=2 (docs/results.md,
            "Narrower or separable detection heads"). Defaults to False.
        **kwargs: The rest of ``CenterNetHead``'s arguments.
    """

    def __init__(self,
                 in_channels: int,
                 feat_channels: int,
                 separable: bool = False,
                 **kwargs):
        # The host builds its branches from feat_channels (_build_head).
        super().__init__(feat_channels, feat_channels, **kwargs)
        if separable:
            self.trunk = DepthwiseSeparableConvModule(
                in_channels, feat_channels, 3, padding=1, dw_act_cfg=None)
        else:
            self.trunk = nn.Sequential(
                nn.Conv2d(in_channels, feat_channels, 3, padding=1),
                nn.ReLU(inplace=True))

    def _build_head(self, in_channels: int, feat_channels: int,
                    out_channels: int) -> nn.Sequential:
        """One branch: a 1x1 conv on the shared map (a Sequential, so the
        host's ``init_weights`` finds its last conv)."""
        return nn.Sequential(nn.Conv2d(in_channels, out_channels, 1))

    def forward_single(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        return super().forward_single(self.trunk(x))

    def get_targets(self, gt_bboxes: List[torch.Tensor],
                    gt_labels: List[torch.Tensor], feat_shape: tuple,
                    img_shape: tuple) -> Tuple[dict, torch.Tensor]:
        """The host's targets, batched: no host sync per box
        (:func:`~mmman.heads.centernet_targets.centernet_targets`)."""
        return centernet_targets(gt_bboxes, gt_labels, self.num_classes,
                                 feat_shape, img_shape)
