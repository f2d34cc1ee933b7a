"""The seeds' base local objectives as heads: DGL, InfoPro, PredSim (Phi, f).

Task-agnostic: labels and the image come in a :class:`LocalTargets` from the
task adapter. Where the seeds use cross-entropy on a class label, an image
with a set of classes (detection boxes, segmentation maps) uses binary
cross-entropy on the multi-hot set (:meth:`LocalTargets.class_loss`). Which
head each objective uses, and InfoPro's per-block weights, are in
:mod:`mmman.local.objectives`.
"""
import functools
import logging
import math
from typing import Dict, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.logging import print_log
from mmengine.model import BaseModule
from mmengine.registry import MODELS

from mmman.local.local_targets import LocalTargets


def _conv_bn_relu(cin: int, cout: int, kernel: int = 1, stride: int = 1):
    return [
        nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True)
    ]


def _upsample2x() -> nn.Module:
    return nn.Upsample(scale_factor=2, mode='bilinear', align_corners=True)


def _needs_maps(name: str, tokens: bool) -> None:
    if tokens:
        raise ValueError(f'{name} needs (N, C, H, W) feature maps; for '
                         'transformer tokens use ImageClassAuxHead.')


MIN_BN1D_BATCH = 4


@functools.lru_cache(maxsize=None)
def _warn_small_bn1d_batch(batch: int) -> None:
    """Once per batch size: BN1d over so few images is unstable."""
    print_log(
        f'DGLAuxHead: BatchNorm1d over {batch} image(s) per device scales '
        'the gradients of near-identical features by up to 1/sqrt(eps); '
        f'below {MIN_BN1D_BATCH} images per device the MLP-SR head can blow '
        'the weights up within a few iterations (docs/methods.md).',
        logger='current',
        level=logging.WARNING)


@MODELS.register_module()
class DGLAuxHead(BaseModule):
    """DGL's "MLP-SR" auxiliary network, cross-entropy.

    ``adaptive avg pool to ceil(H/4) x ceil(W/4) -> 3 x [conv1x1-BN-ReLU]
    (C channels) -> avg pool to 2x2 -> 3 x [Linear(4C)-BN1d-ReLU] ->
    Linear(classes)``.

    Args:
        in_channels (int): C.
        num_classes (int): Number of classes.
        channels (int, optional): Conv width; C as published.
        loss_weight (float): Weight of the loss.
    """
    uses_local_targets = True

    def __init__(self,
                 in_channels: int,
                 num_classes: int,
                 channels: Optional[int] = None,
                 loss_weight: float = 1.0,
                 tokens: bool = False,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg)
        _needs_maps('DGLAuxHead', tokens)
        c = channels or in_channels
        self.loss_weight = loss_weight
        self.convs = nn.Sequential(*_conv_bn_relu(in_channels, c),
                                   *_conv_bn_relu(c, c), *_conv_bn_relu(c, c))
        mlp = []
        for _ in range(3):
            mlp += [nn.Linear(4 * c, 4 * c), nn.BatchNorm1d(4 * c),
                    nn.ReLU(inplace=True)]
        self.mlp = nn.Sequential(*mlp, nn.Linear(4 * c, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and x.shape[0] < MIN_BN1D_BATCH:
            _warn_small_bn1d_batch(x.shape[0])
        h, w = x.shape[-2:]
        x = F.adaptive_avg_pool2d(x, (math.ceil(h / 4), math.ceil(w / 4)))
        x = F.adaptive_avg_pool2d(self.convs(x), (2, 2))
        return self.mlp(x.flatten(1))

    def loss(self, x: torch.Tensor,
             targets: LocalTargets) -> Dict[str, torch.Tensor]:
        return dict(loss_cls=targets.class_loss(self(x)) * self.loss_weight)


@MODELS.register_module()
class InfoProAuxHead(BaseModule):
    """InfoPro: reconstruction decoder plus the "1c2f" task head.

    Two published decoders, both ending in a sigmoid and binary cross-entropy
    against the de-normalised image in [0, 1]:

    - ``'cifar'`` (InfoPro's CIFAR code): bilinear upsample to the image ->
      conv3x3 C->12-BN-ReLU -> conv3x3 12->3. At detection sizes the
      upsampled C-channel map alone takes gigabytes.
    - ``'segmentation'`` (InfoPro's Cityscapes code, written for stride-8
      features): conv1x1 C->128-BN-ReLU -> 3 x [bilinear x2 -> conv3x3-BN-
      ReLU] (128->32->12) -> conv3x3 12->3 at the last x2. Features at
      another stride get their 3-channel logits resized to the image.

    Task head: conv3x3-BN-ReLU (2C channels at stride 2 when C < 64, else C
    at stride 1) -> global pool -> FC(128)-ReLU -> FC. Loss:
    ``recon_weight * BCE + task_weight * CE``; the per-block weights come
    from :func:`infopro_weights`.

    Args:
        in_channels (int): C.
        num_classes (int): Number of classes.
        recon_weight (float): lambda_1 of this block.
        task_weight (float): lambda_2 of this block.
        recon_channels (int): Width of the ``'cifar'`` decoder (12).
        hidden (int): Hidden FC width of the task head (128 as published).
        decoder (str): ``'cifar'`` or ``'segmentation'``.
    """
    uses_local_targets = True

    def __init__(self,
                 in_channels: int,
                 num_classes: int,
                 recon_weight: float = 1.0,
                 task_weight: float = 1.0,
                 recon_channels: int = 12,
                 hidden: int = 128,
                 decoder: str = 'cifar',
                 tokens: bool = False,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg)
        _needs_maps('InfoProAuxHead', tokens)
        if decoder not in ('cifar', 'segmentation'):
            raise ValueError(f'InfoProAuxHead: decoder {decoder!r} is not '
                             "'cifar' or 'segmentation'.")
        self.recon_weight = recon_weight
        self.task_weight = task_weight
        self.upsample_first = decoder == 'cifar'
        if self.upsample_first:
            self.decoder = nn.Sequential(
                *_conv_bn_relu(in_channels, recon_channels, 3),
                nn.Conv2d(recon_channels, 3, 3, padding=1))
        else:
            layers = _conv_bn_relu(in_channels, 128)
            for cin, cout in ((128, 32), (32, 12)):
                layers += [_upsample2x(), *_conv_bn_relu(cin, cout, 3)]
            self.decoder = nn.Sequential(*layers, _upsample2x(),
                                         nn.Conv2d(12, 3, 3, padding=1))
        wide = in_channels < 64
        c = 2 * in_channels if wide else in_channels
        self.task = nn.Sequential(
            *_conv_bn_relu(in_channels, c, 3, 2 if wide else 1),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, hidden),
            nn.ReLU(inplace=True), nn.Linear(hidden, num_classes))

    def reconstruct(self, x: torch.Tensor, size) -> torch.Tensor:
        """Logits of the reconstructed image (sigmoid in the loss)."""
        if self.upsample_first:
            x = F.interpolate(
                x, size=size, mode='bilinear', align_corners=True)
        x = self.decoder(x)
        if tuple(x.shape[-2:]) != tuple(size):
            x = F.interpolate(
                x, size=size, mode='bilinear', align_corners=True)
        return x

    def loss(self, x: torch.Tensor,
             targets: LocalTargets) -> Dict[str, torch.Tensor]:
        image = targets.image.to(x.device)
        recon = F.binary_cross_entropy_with_logits(
            self.reconstruct(x, image.shape[-2:]).float(), image)
        task = targets.class_loss(self.task(x))
        return dict(
            loss_recon=recon * self.recon_weight,
            loss_cls=task * self.task_weight)


def similarity_matrix(x: torch.Tensor) -> torch.Tensor:
    """PredSim's S(X): ``(N, N)`` cosine similarity of centred rows.

    A map ``(N, C, H, W)`` is first reduced to the per-channel standard
    deviation over spatial positions.
    """
    if x.dim() == 4:
        x = x.flatten(2)
        x = x.std(dim=2) if x.shape[2] > 1 else x[..., 0]
    x = x.flatten(1)
    x = x - x.mean(dim=1, keepdim=True)
    x = x / (x.norm(dim=1, keepdim=True) + 1e-8)
    return (x @ x.t()).clamp(-1, 1)


@MODELS.register_module()
class PredSimAuxHead(BaseModule):
    """PredSim: ``(1 - beta) * CE(Linear(avgpool(h))) +
    beta * MSE(S(conv3x3(h)), S(onehot(y)))``.

    The pooled input of the (zero-initialised) linear decoder has at most
    ``max_dims`` values: ``h`` is average-pooled to the largest square
    ``s x s`` with ``C * s * s <= max_dims`` (adaptive, so any input size
    works; the seed pools by powers of two of a fixed CIFAR size).

    Args:
        in_channels (int): C.
        num_classes (int): Number of classes.
        beta (float): Weight of the similarity term (0.99 as published).
        max_dims (int): Decoder input size bound (4096 as published).
        loss_weight (float): Weight of the whole loss.
    """
    uses_local_targets = True

    def __init__(self,
                 in_channels: int,
                 num_classes: int,
                 beta: float = 0.99,
                 max_dims: int = 4096,
                 loss_weight: float = 1.0,
                 tokens: bool = False,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg)
        _needs_maps('PredSimAuxHead', tokens)
        self.num_classes = num_classes
        self.beta = beta
        self.loss_weight = loss_weight
        self.side = max(1, int(math.sqrt(max_dims / in_channels)))
        self.sim_conv = nn.Conv2d(in_channels, in_channels, 3, padding=1,
                                  bias=False)
        self.decoder = nn.Linear(in_channels * self.side**2, num_classes)
        nn.init.zeros_(self.decoder.weight)
        nn.init.zeros_(self.decoder.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = F.adaptive_avg_pool2d(x, self.side)
        return self.decoder(pooled.flatten(1))

    def loss(self, x: torch.Tensor,
             targets: LocalTargets) -> Dict[str, torch.Tensor]:
        pred = targets.class_loss(self(x))
        sim = F.mse_loss(
            similarity_matrix(self.sim_conv(x)),
            similarity_matrix(targets.one_hot(self.num_classes).to(x)))
        w = self.loss_weight
        return dict(
            loss_cls=(1 - self.beta) * pred * w,
            loss_sim=self.beta * sim * w)
