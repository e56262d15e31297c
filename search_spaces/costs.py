"""Cost primitives: parameters and multiply-adds of one conv or SE (torch-free).

MAdds count convolution and linear layers only (the convention of torchvision's weight
metadata and MobileNetV3 Table 3); batch norm, activations, pooling and the SE multiply
are not counted. Parameters count every weight, bias and BN affine parameter. Block types
(``search_spaces.blocks``) add these up; ``search_spaces.counting`` sums a whole spec.
"""
from __future__ import annotations

from dataclasses import dataclass

from search_spaces.widths import se_channels


@dataclass(frozen=True)
class Cost:
    params: int = 0
    madds: int = 0

    def __add__(self, other: "Cost") -> "Cost":
        return Cost(self.params + other.params, self.madds + other.madds)


def conv_cost(in_ch: int, out_ch: int, kernel: int, out_side: int, groups: int = 1, bn: bool = True,
              bias: bool = False) -> Cost:
    """A k x k conv producing ``out_ch`` x ``out_side`` x ``out_side`` (a linear layer: 1x1, side 1)."""
    weights = out_ch * (in_ch // groups) * kernel * kernel
    params = weights + (2 * out_ch if bn else 0) + (out_ch if bias else 0)
    return Cost(params, weights * out_side * out_side)


def se_cost(channels: int) -> Cost:
    """MobileNetV3's SE on ``channels`` (two 1x1 convs with bias on the pooled vector)."""
    squeeze = se_channels(channels)
    return conv_cost(channels, squeeze, 1, 1, bn=False, bias=True) + conv_cost(squeeze, channels, 1, 1, bn=False, bias=True)


def out_side(side: int, stride: int) -> int:
    """Output side of a padded conv (``ceil`` division)."""
    return (side + stride - 1) // stride
