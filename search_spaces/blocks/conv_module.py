"""The torch module of the regular conv block type (:mod:`search_spaces.blocks.conv`)."""
from __future__ import annotations

import torch
from torch import nn

from search_spaces.layers import DEFAULT_LAYERS, ConvBNAct, Layers, SqueezeExcite


class RegularConv(nn.Module):
    """MnasNet's regular convolution block: ``conv`` (k x k conv, BN, act), optional ``se``
    (``None`` without SE), optional residual."""

    def __init__(self, in_channels: int, block: BlockSpec, layers: Layers = DEFAULT_LAYERS) -> None:
        super().__init__()
        self.conv = ConvBNAct(in_channels, block.out_channels, block.kernel, block.stride, act=block.act, layers=layers)
        self.se = SqueezeExcite(block.out_channels) if block.se else None
        self.skip = block.skip

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        """The block without its residual."""
        x = self.conv(x)
        return x if self.se is None else self.se(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.branch(x)
        return out + x if self.skip else out
