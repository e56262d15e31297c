"""MnasNet's regular convolution block: k x k conv (BN, activation), optional SE on its
output, optional residual. The module is :class:`search_spaces.blocks.conv_module.RegularConv`."""
from __future__ import annotations

from typing import Any

from search_spaces.blocks.base import Block, BlockType, Part, TimmForm
from search_spaces.costs import Cost, conv_cost, out_side, se_cost


def _cost(block: Block, in_channels: int, in_side: int) -> Cost:
    cost = conv_cost(in_channels, block.out_channels, block.kernel, out_side(in_side, block.stride))
    return cost + se_cost(block.out_channels) if block.se else cost


def _activations(block: Block, in_channels: int, in_side: int) -> int:
    side = out_side(in_side, block.stride)
    inputs, outputs = in_channels * in_side * in_side, block.out_channels * side * side
    return inputs + outputs + (inputs if block.skip else 0)


def _build(in_channels: int, block: Block, layers: Any) -> Any:
    from search_spaces.blocks.conv_module import RegularConv  # torch, only when a model is built

    return RegularConv(in_channels, block, layers)


def _timm_export(block: Block, in_channels: int) -> str:
    if block.se:
        raise ValueError("a regular conv block with SE has no timm arch_def form ('cn' blocks have no SE)")
    return f"cn_r1_k{block.kernel}_s{block.stride}_c{block.out_channels}"


def _parts(block: Block, has_expansion_conv: bool) -> tuple[Part, ...]:
    return (Part("conv", "out", "in"), *((Part("se", "out", kind="se"),) if block.se else ()))


CONV = BlockType(op="conv", token="cn", table_name="conv2d", expands=False, cost=_cost, activations=_activations,
                 build=_build, timm=TimmForm(("cn",), _timm_export, lambda op, ratio, in_channels: None),
                 parts=_parts)
