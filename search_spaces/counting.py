"""Parameters and multiply-adds computed from an :class:`ArchSpec` alone (no torch).

MAdds count convolution and linear layers only (the convention of torchvision's weight
metadata and MobileNetV3 Table 3); batch norm, activations, pooling and the SE multiply
are not counted. Parameters count every weight, bias and BN affine parameter. Each block's
cost is its block type's (:mod:`search_spaces.blocks`); the primitives are
:mod:`search_spaces.costs`.
"""
from __future__ import annotations

from search_spaces.blocks.registry import block_type
from search_spaces.costs import Cost, conv_cost, out_side
from search_spaces.spec import ArchSpec, BlockSpec

__all__ = ["Cost", "block_cost", "stem_cost", "head_cost", "spec_cost", "count_params", "count_madds"]


def block_cost(block: BlockSpec, in_channels: int, in_side: int) -> Cost:
    """Cost of one block whose input is ``in_channels`` x ``in_side`` x ``in_side``."""
    return block_type(block.op).cost(block, in_channels, in_side)


def stem_cost(spec: ArchSpec) -> Cost:
    return conv_cost(spec.in_channels, spec.stem.out_channels, spec.stem.kernel, out_side(spec.resolution, spec.stem.stride))


def head_cost(spec: ArchSpec) -> Cost:
    head = spec.head
    cost = conv_cost(spec.blocks[-1].out_channels, head.feature_channels, 1, spec.final_resolution)
    width = head.feature_channels
    if head.hidden_channels is not None:
        cost += conv_cost(width, head.hidden_channels, 1, 1, bn=False, bias=True)
        width = head.hidden_channels
    return cost + conv_cost(width, spec.num_classes, 1, 1, bn=False, bias=True)


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
