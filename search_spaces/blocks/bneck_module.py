"""The torch module of the bottleneck block type (:mod:`search_spaces.blocks.bneck`)."""
from __future__ import annotations

import torch
from torch import nn

from search_spaces.layers import DEFAULT_LAYERS, ConvBNAct, Layers, SqueezeExcite


class Bottleneck(nn.Module):
    """Inverted residual bottleneck (MobileNetV2/V3 "bneck") with timm's part names:
    ``conv_pw`` 1x1 expansion (``None`` when ``exp_channels == in_channels``, Table 1 row 2),
    ``conv_dw`` k x k depthwise, ``se`` (``None`` without SE), ``conv_pwl`` linear 1x1
    projection, and the identity residual when ``block.skip``."""

    def __init__(self, in_channels: int, block: BlockSpec, layers: Layers = DEFAULT_LAYERS) -> None:
        super().__init__()
        exp = block.exp_channels
        self.conv_pw = ConvBNAct(in_channels, exp, 1, act=block.act, layers=layers) if exp != in_channels else None
        self.conv_dw = ConvBNAct(exp, exp, block.kernel, block.stride, groups=exp, act=block.act, layers=layers)
        self.se = SqueezeExcite(exp) if block.se else None
        self.conv_pwl = ConvBNAct(exp, block.out_channels, 1, layers=layers)
        self.skip = block.skip

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        """The block without its residual."""
        if self.conv_pw is not None:
            x = self.conv_pw(x)
        x = self.conv_dw(x)
        if self.se is not None:
            x = self.se(x)
        return self.conv_pwl(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.branch(x)
        return out + x if self.skip else out
