"""Backbones for the host libraries (MMPretrain)."""
from .cifar_resnet import CifarResNet

__all__ = ['CifarResNet']
