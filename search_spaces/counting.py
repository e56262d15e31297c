"""Parameters and multiply-adds computed from an :class:`ArchSpec` alone (no torch).

MAdds count convolution and linear layers only (the convention of torchvision's weight
metadata and MobileNetV3 Table 3); batch norm, activations, pooling and the SE multiply
are not counted. Parameters count every weight, bias and BN affine parameter.
"""
from __future__ import annotations

from dataclasses import dataclass

from search_spaces.spec import ArchSpec, BlockSpec, se_channels


@dataclass(frozen=True)
class Cost:
    params: int = 0
    madds: int = 0

    def __add__(self, other: "Cost") -> "Cost":
        return Cost(self.params + other.params, self.madds + other.madds)


def _conv(in_ch: int, out_ch: int, kernel: int, out_side: int, groups: int = 1, bn: bool = True, bias: bool = False) -> Cost:
    weights = out_ch * (in_ch // groups) * kernel * kernel
    params = weights + (2 * out_ch if bn else 0) + (out_ch if bias else 0)
    return Cost(params, weights * out_side * out_side)


def _se(channels: int) -> Cost:
    squeeze = se_channels(channels)
    return _conv(channels, squeeze, 1, 1, bn=False, bias=True) + _conv(squeeze, channels, 1, 1, bn=False, bias=True)


def _out_side(side: int, stride: int) -> int:
    return (side + stride - 1) // stride


def block_cost(block: BlockSpec, in_channels: int, in_side: int) -> Cost:
    """Cost of one block whose input is ``in_channels`` x ``in_side`` x ``in_side``."""
    out_side = _out_side(in_side, block.stride)
    if block.op == "conv":
        cost = _conv(in_channels, block.out_channels, block.kernel, out_side)
        return cost + _se(block.out_channels) if block.se else cost
    exp = block.exp_channels
    cost = Cost()
    if exp != in_channels:
        cost += _conv(in_channels, exp, 1, in_side)
    cost += _conv(exp, exp, block.kernel, out_side, groups=exp)
    if block.se:
        cost += _se(exp)
    return cost + _conv(exp, block.out_channels, 1, out_side)


def stem_cost(spec: ArchSpec) -> Cost:
    out_side = _out_side(spec.resolution, spec.stem.stride)
    return _conv(spec.in_channels, spec.stem.out_channels, spec.stem.kernel, out_side)


def head_cost(spec: ArchSpec) -> Cost:
    head = spec.head
    cost = _conv(spec.blocks[-1].out_channels, head.feature_channels, 1, spec.final_resolution)
    width = head.feature_channels
    if head.hidden_channels is not None:
        cost += _conv(width, head.hidden_channels, 1, 1, bn=False, bias=True)
        width = head.hidden_channels
    return cost + _conv(width, spec.num_classes, 1, 1, bn=False, bias=True)


def spec_cost(spec: ArchSpec) -> Cost:
    """Total parameters and conv/linear multiply-adds of ``spec``."""
    total = stem_cost(spec)
    for index, (block, side) in enumerate(zip(spec.blocks, spec.input_resolutions())):
        total += block_cost(block, spec.in_channels_of(index), side)
    return total + head_cost(spec)


def count_params(spec: ArchSpec) -> int:
    return spec_cost(spec).params


def count_madds(spec: ArchSpec) -> int:
    return spec_cost(spec).madds
