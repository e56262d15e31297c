"""The inverted residual bottleneck (MobileNetV2/V3 "bneck", MBConv): 1x1 expansion conv
(none when ``exp_channels == in_channels``, a depthwise-separable conv: Table 1 row 2),
k x k depthwise conv, optional SE on the expanded map, linear 1x1 projection. The module is
:class:`search_spaces.blocks.bneck_module.Bottleneck`."""
from __future__ import annotations

from typing import Any

from search_spaces.blocks.base import Block, BlockType, Part, TimmForm
from search_spaces.costs import Cost, conv_cost, out_side, se_cost


def _cost(block: Block, in_channels: int, in_side: int) -> Cost:
    exp, side = block.exp_channels, out_side(in_side, block.stride)
    cost = Cost()
    if exp != in_channels:
        cost += conv_cost(in_channels, exp, 1, in_side)
    cost += conv_cost(exp, exp, block.kernel, side, groups=exp)
    if block.se:
        cost += se_cost(exp)
    return cost + conv_cost(exp, block.out_channels, 1, side)


def _activations(block: Block, in_channels: int, in_side: int) -> int:
    """Input, expanded map (when there is an expansion conv), depthwise output, output, residual."""
    side, exp = out_side(in_side, block.stride), block.exp_channels
    inputs, outputs = in_channels * in_side * in_side, block.out_channels * side * side
    expanded = exp * in_side * in_side if exp != in_channels else 0
    return inputs + expanded + exp * side * side + outputs + (inputs if block.skip else 0)


def _build(in_channels: int, block: Block, layers: Any) -> Any:
    from search_spaces.blocks.bneck_module import Bottleneck  # torch, only when a model is built

    return Bottleneck(in_channels, block, layers)


def _timm_export(block: Block, in_channels: int) -> str:
    if block.exp_channels == in_channels:
        return f"ds_r1_k{block.kernel}_s{block.stride}_e1_c{block.out_channels}"
    ratio = f"{block.exp_channels / in_channels:.6g}"
    return f"ir_r1_k{block.kernel}_s{block.stride}_e{ratio}_c{block.out_channels}"


def _timm_exp(op: str, ratio: str, in_channels: int) -> int:
    return in_channels if op == "ds" else round(in_channels * float(ratio))


def _parts(block: Block, has_expansion_conv: bool) -> tuple[Part, ...]:
    pw = (Part("conv_pw", "exp", "in"),) if has_expansion_conv else ()
    se = (Part("se", "exp", kind="se"),) if block.se else ()
    return (*pw, Part("conv_dw", "exp"), *se, Part("conv_pwl", "out", "exp"))


BNECK = BlockType(op="bneck", token="ir", table_name="bneck", expands=True, cost=_cost, activations=_activations,
                  build=_build, timm=TimmForm(("ds", "ir"), _timm_export, _timm_exp), parts=_parts)
