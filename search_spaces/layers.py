"""The layers every block type's module is built from (MobileNetV3 section 5): named
conv + norm + activation (:class:`ConvBNAct`, whose conv skips in training the kernel taps that
only meet zero padding: :class:`TrimmedConv2d`), squeeze-and-excite, and the injectable norm and
activation factories (:class:`Layers`, timm's ``norm_layer``/``act_layer``).

Never imports ``search_spaces.spec`` (the block types' modules use these, and the spec
imports the block-type registry).
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
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


def reach(kernel: int, size: int) -> int:
    """How much of an odd ``kernel`` (padded by ``kernel // 2``) can touch a ``size``-long input:
    offsets further than ``size - 1`` from the centre only ever meet the zero padding, so the
    centre ``2 size - 1`` computes the same outputs and gradients (zero for the rest)."""
    return min(kernel, 2 * size - 1)


def centre_crop(weight: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """The centre ``height`` x ``width`` of a conv weight (once-for-all's elastic kernel crop)."""
    top, left = (weight.shape[-2] - height) // 2, (weight.shape[-1] - width) // 2
    return weight[..., top:top + height, left:left + width]


class TrimmedConv2d(nn.Conv2d):
    """``nn.Conv2d`` (same state, same eval-mode and exported computation) whose *training*
    passes skip the kernel rows and columns that can only meet zero padding (:func:`reach`): the
    5x5 depthwise convolutions on the last 1x1 and 2x2 maps of a 32x32 input. Exact, and on 2
    cores it made a MobileNetV3-Small training step at 32x32 about 17% faster. Eval mode, tracing
    and ONNX export run the full kernel, so latency is measured for the spec as written."""

    def _trims(self) -> bool:
        """Training, outside tracing and export, with odd kernels "same"-padded by zeros."""
        height, width = self.kernel_size
        return (self.training and height % 2 == 1 and width % 2 == 1 and self.padding == (height // 2, width // 2)
                and self.dilation == (1, 1) and self.padding_mode == "zeros"
                and not torch.jit.is_tracing() and not torch.onnx.is_in_onnx_export())

    def _conv_forward(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        height, width = weight.shape[-2:]
        trim = (reach(height, x.shape[-2]), reach(width, x.shape[-1]))
        if trim == (height, width) or not self._trims():
            return super()._conv_forward(x, weight, bias)
        return F.conv2d(x, centre_crop(weight, *trim), bias, self.stride, (trim[0] // 2, trim[1] // 2), 1, self.groups)


class ConvBNAct(nn.Sequential):
    """k x k convolution without bias (``conv``), norm (``bn``), optional activation
    (``act``): named children, so ``stem.conv.weight`` means the same thing in every spec."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int = 1,
                 groups: int = 1, act: str | None = None, *, layers: Layers = DEFAULT_LAYERS) -> None:
        parts: OrderedDict[str, nn.Module] = OrderedDict(
            conv=TrimmedConv2d(in_channels, out_channels, kernel, stride, (kernel - 1) // 2, groups=groups,
                               bias=False),
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
