"""Hashable latency keys: every layer of a spec in its context (stem, blocks, head).

A block's latency depends on its operator and shapes, not on where in the network it sits,
so the key is (op, input side, in/exp/out channels, kernel, stride, SE, nonlinearity,
residual): the per-block lookup table of MnasNet (Tan et al., 2019, section 3) and
once-for-all. The head's dropout is left out (it is the identity at inference).
"""
from __future__ import annotations

from dataclasses import astuple, dataclass, fields
from functools import lru_cache

from torch import nn

from search_spaces.blocks.registry import block_type
from search_spaces.builder import ConvBNAct, Head, build_block
from search_spaces.counting import block_cost, head_cost, stem_cost
from search_spaces.spec import ArchSpec, BlockSpec, HeadSpec, StemSpec

KINDS = ("stem", "block", "head")


@dataclass(frozen=True, order=True)
class LayerKey:
    """One layer in context. ``exp_channels`` is 0 for a regular conv and the stem;
    ``hidden_channels`` is 0 without a hidden head conv; ``num_classes`` is 0 outside the head."""

    kind: str
    op: str
    input_side: int
    in_channels: int
    exp_channels: int
    out_channels: int
    kernel: int
    stride: int
    se: bool
    act: str
    residual: bool
    hidden_channels: int = 0
    num_classes: int = 0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"key.kind = {self.kind!r} is not allowed; expected one of {KINDS}")

    def input_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of this layer's input."""
        return (self.in_channels, self.input_side, self.input_side)

    def as_row(self) -> dict[str, object]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def label(self) -> str:
        """A short human-readable form for logs and error messages."""
        return "_".join(str(v) for v in astuple(self))


KEY_COLUMNS = tuple(f.name for f in fields(LayerKey))


def layer_kind(key: LayerKey) -> str:
    """``stem``, ``head``, or a block's operator with its SE and activation (``bneck_se1_hswish``)."""
    return str(key.kind) if key.kind != "block" else f"{key.op}_se{int(key.se)}_{key.act}"


def key_from_row(row: dict[str, object]) -> LayerKey:
    """Inverse of :meth:`LayerKey.as_row` (values coerced to the field types)."""
    casts = {"kind": str, "op": str, "act": str, "se": _to_bool, "residual": _to_bool}
    return LayerKey(**{name: casts.get(name, int)(row[name]) for name in KEY_COLUMNS})


def _to_bool(value: object) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1")
    return bool(value)


def _side_after(side: int, stride: int) -> int:
    return (side + stride - 1) // stride


def stem_key(spec: ArchSpec) -> LayerKey:
    stem = spec.stem
    return LayerKey("stem", "conv", spec.resolution, spec.in_channels, 0, stem.out_channels, stem.kernel,
                    stem.stride, False, stem.act, False)


def block_key(block: BlockSpec, in_channels: int, input_side: int) -> LayerKey:
    """The key of ``block`` fed ``in_channels`` x ``input_side`` x ``input_side``."""
    return LayerKey("block", block.op, input_side, in_channels, block.exp_channels or 0, block.out_channels,
                    block.kernel, block.stride, block.se, block.act, block.skip)


def head_key(head: HeadSpec, in_channels: int, input_side: int, num_classes: int) -> LayerKey:
    return LayerKey("head", "head", input_side, in_channels, 0, head.feature_channels, 1, 1, False, head.act,
                    False, head.hidden_channels or 0, num_classes)


@lru_cache(maxsize=4096)
def spec_keys(spec: ArchSpec) -> tuple[LayerKey, ...]:
    """Every layer of ``spec`` as a key, in network order: stem, blocks, head (cached: a
    prediction asks for them twice, what the table lacks and the features)."""
    sides = spec.input_resolutions()
    blocks = tuple(block_key(b, spec.in_channels_of(i), sides[i]) for i, b in enumerate(spec.blocks))
    head = head_key(spec.head, spec.blocks[-1].out_channels, spec.final_resolution, spec.num_classes)
    return (stem_key(spec), *blocks, head)


def _key_block(key: LayerKey) -> BlockSpec:
    """The block a ``block`` key describes (``exp_channels`` 0 stands for none)."""
    return BlockSpec(key.op, key.kernel, key.stride, key.exp_channels or None, key.out_channels, key.se, key.act,
                     key.residual)


def key_module(key: LayerKey) -> nn.Module:
    """A freshly initialised module computing the layer ``key`` describes."""
    if key.kind == "stem":
        return ConvBNAct(key.in_channels, key.out_channels, key.kernel, key.stride, act=key.act)
    if key.kind == "block":
        return build_block(key.in_channels, _key_block(key))
    carrier = ArchSpec(blocks=(BlockSpec("conv", 1, 1, None, key.in_channels),),
                       head=HeadSpec(key.out_channels, key.hidden_channels or None, key.act, 0.0),
                       num_classes=key.num_classes)
    return Head(carrier)


@lru_cache(maxsize=65536)
def key_cost(key: LayerKey) -> tuple[int, int]:
    """``(params, madds)`` of the layer ``key`` (search_spaces.counting, BN folded as there;
    cached: every prediction reads it for each of its layers)."""
    if key.kind == "block":
        cost = block_cost(_key_block(key), key.in_channels, key.input_side)
    elif key.kind == "stem":
        carrier = ArchSpec(blocks=(BlockSpec("conv", 1, 1, None, key.out_channels),),
                           stem=StemSpec(key.out_channels, key.kernel, key.stride, key.act),
                           resolution=key.input_side, in_channels=key.in_channels)
        cost = stem_cost(carrier)
    else:
        carrier = ArchSpec(blocks=(BlockSpec("conv", 1, 1, None, key.in_channels),), stem=StemSpec(stride=1),
                           head=HeadSpec(key.out_channels, key.hidden_channels or None, key.act, 0.0),
                           resolution=key.input_side, num_classes=key.num_classes)
        cost = head_cost(carrier)
    return cost.params, cost.madds


@lru_cache(maxsize=65536)
def key_activations(key: LayerKey) -> int:
    """Activation elements the layer ``key`` reads and writes: its input, its output, the
    head's maps; a block's are its block type's (a bottleneck adds its expanded and depthwise
    maps, a residual the input read again).
    Memory-bound layers cost in proportion (the calibration's activation-traffic term)."""
    side, out = key.input_side, _side_after(key.input_side, key.stride)
    inputs, outputs = key.in_channels * side * side, key.out_channels * out * out
    if key.kind == "head":
        return inputs + key.out_channels * (side * side + 1) + key.hidden_channels + key.num_classes
    if key.kind == "stem":
        return inputs + outputs
    return block_type(key.op).activations(_key_block(key), key.in_channels, key.input_side)


def space_keys(space: object) -> list[LayerKey]:
    """Every key any spec of ``space`` can contain: its stem, every block context
    (``space.block_contexts()``) and the head after every block width that can reach the
    final resolution (a few more head keys than strictly needed, never fewer)."""
    contexts = list(space.block_contexts())
    blocks = [block_key(block, in_channels, side) for block, in_channels, side in contexts]
    final_side = min(_side_after(side, block.stride) for block, _, side in contexts)
    last_widths = sorted({block.out_channels for block, _, side in contexts if _side_after(side, block.stride) == final_side})
    carrier = ArchSpec(blocks=(BlockSpec("conv", 1, 1, None, space.stem.out_channels),), stem=space.stem,
                       head=space.head, resolution=space.resolution, in_channels=space.in_channels,
                       num_classes=space.num_classes)
    heads = [head_key(space.head, width, final_side, space.num_classes) for width in last_widths]
    return [stem_key(carrier), *blocks, *heads]
