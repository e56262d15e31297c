"""The layers every block type's module is built from (MobileNetV3 section 5): named
conv + norm + activation (:class:`ConvBNAct`), squeeze-and-excite, and the injectable norm and
activation factories (:class:`Layers`, timm's ``norm_layer``/``act_layer``).

Never imports ``search_spaces.spec`` (the block types' modules use these, and the spec
imports the block-type registry).
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from search_spaces.widths import se_channels

_ACTIVATIONS = {"relu": nn.ReLU, "relu6": nn.ReLU6, "hswish": nn.Hardswish}
BN_EPS = 1e-3
BN_MOMENTUM = 0.01
"""torchvision's ``mobilenet_v3`` (``partial(nn.BatchNorm2d, eps=0.001, momentum=0.01)``) and
timm's MobileNetV3 (TF's BN defaults); PyTorch's own defaults are 1e-5 and 0.1."""

NormLayer = Callable[[int], nn.Module]
"""channels -> a normalisation module (``bn`` of every conv)."""
ActLayer = Callable[[str], nn.Module]
"""an activation name of the spec (``relu``, ``relu6``, ``hswish``) -> a module."""


def activation(name: str) -> nn.Module:
    """The nonlinearity ``name`` (h-swish = x * ReLU6(x + 3) / 6, section 5.2)."""
    return _ACTIVATIONS[name](inplace=True)


def batch_norm(channels: int) -> nn.Module:
    """The default norm layer: ``BatchNorm2d`` with MobileNetV3's eps and momentum."""
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


@dataclass(frozen=True)
class Layers:
    """The factories every part is built with (timm's ``norm_layer`` / ``act_layer``)."""

    norm: NormLayer = batch_norm
    act: ActLayer = activation


DEFAULT_LAYERS = Layers()


class ConvBNAct(nn.Sequential):
    """k x k convolution without bias (``conv``), norm (``bn``), optional activation
    (``act``): named children, so ``stem.conv.weight`` means the same thing in every spec."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int = 1,
                 groups: int = 1, act: str | None = None, *, layers: Layers = DEFAULT_LAYERS) -> None:
        parts: OrderedDict[str, nn.Module] = OrderedDict(
            conv=nn.Conv2d(in_channels, out_channels, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
            bn=layers.norm(out_channels),
        )
        if act is not None:
            parts["act"] = layers.act(act)
        super().__init__(parts)


class SqueezeExcite(nn.Module):
    """Squeeze-and-excite with a hard-sigmoid gate (section 5.3): ``conv_reduce`` to
    ``se_channels(channels)``, ReLU, ``conv_expand`` back, hard-sigmoid (timm's names)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        squeeze = se_channels(channels)
        self.conv_reduce = nn.Conv2d(channels, squeeze, 1)
        self.act = nn.ReLU(inplace=True)  # fixed, as timm's MobileNetV3 forces ReLU in its SE
        self.conv_expand = nn.Conv2d(squeeze, channels, 1)
        self.gate = nn.Hardsigmoid(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = torch.nn.functional.adaptive_avg_pool2d(x, 1)
        scale = self.gate(self.conv_expand(self.act(self.conv_reduce(scale))))
        return x * scale
