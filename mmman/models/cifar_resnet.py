"""He et al. 2016's CIFAR ResNets (depth 6n+2) as an MMPretrain backbone."""
from mmcv.cnn import ConvModule
from mmengine.registry import MODELS
from mmpretrain.models.backbones.resnet import BasicBlock, ResNet


@MODELS.register_module()
class CifarResNet(ResNet):
    """ResNet-20/32/44/56/110/1202 of He et al. 2016 (Sec. 4.2) for 32x32.

    A 3x3 conv stem (16 channels, no max-pool) and three stages of n basic
    blocks with 16, 32 and 64 channels (first strides 1, 2, 2); depth =
    6n + 2 (ResNet-32: n=5, ResNet-110: n=18). Stages are MMPretrain's
    ``ResLayer`` of ``BasicBlock``; a downsampling shortcut is a 1x1 conv
    with BN. MMPretrain's ``ResNet_CIFAR`` is the 4-stage, 64-channel
    ResNet-18/34/50 family instead.

    Args:
        depth (int): 20, 32, 44, 56, 110 or 1202.
        stem_unit (bool): Let mmman's block partition treat the stem
            (``self.stem``) as a unit of its own, as the MAN paper counts
            modules ("K=16" for ResNet-32 = stem + 15 residual units). With
            False the stem belongs to the first block (the public code's
            15 modules). Does not change the network. Defaults to False.
        **kwargs: Other arguments of MMPretrain's ``ResNet``.
    """
    arch_settings = {
        depth: (BasicBlock, ((depth - 2) // 6, ) * 3)
        for depth in (20, 32, 44, 56, 110, 1202)
    }

    def __init__(self,
                 depth: int,
                 stem_channels: int = 16,
                 base_channels: int = 16,
                 num_stages: int = 3,
                 strides=(1, 2, 2),
                 dilations=(1, 1, 1),
                 out_indices=(2, ),
                 stem_unit: bool = False,
                 **kwargs):
        super().__init__(
            depth,
            stem_channels=stem_channels,
            base_channels=base_channels,
            num_stages=num_stages,
            strides=strides,
            dilations=dilations,
            out_indices=out_indices,
            deep_stem=False,
            **kwargs)
        self.stem_unit = stem_unit

    def _make_stem_layer(self, in_channels: int, stem_channels: int):
        self.stem = ConvModule(
            in_channels,
            stem_channels,
            kernel_size=3,
            padding=1,
            bias=False,
            conv_cfg=self.conv_cfg,
            norm_cfg=self.norm_cfg,
            inplace=True)

    def _freeze_stages(self):
        if self.frozen_stages >= 0:
            self.stem.eval()
            for param in self.stem.parameters():
                param.requires_grad = False
        for i in range(1, self.frozen_stages + 1):
            layer = getattr(self, f'layer{i}')
            layer.eval()
            for param in layer.parameters():
                param.requires_grad = False

    def forward(self, x):
        x = self.stem(x)
        outs = []
        for i, name in enumerate(self.res_layers):
            x = getattr(self, name)(x)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)
