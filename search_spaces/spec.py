"""The architecture spec: the one language every MobileNAS component speaks.

An :class:`ArchSpec` describes a MobileNetV3-style network exactly, row by row as in
Tables 1-2 of "Searching for MobileNetV3" (Howard et al., 2019): a stem convolution,
a flat tuple of blocks with *absolute* channel counts, and the efficient last stage
(section 5.1). Specs are frozen and hashable; invalid values raise ``ValueError``
naming the field, the value and what is allowed.

Block operators (``BlockSpec.op``) are the registered block types
(:mod:`search_spaces.blocks.registry`): ``bneck`` is the inverted residual bottleneck (MBConv;
with ``exp_channels == in_channels`` it has no expansion conv and is a depthwise-separable
conv), ``conv`` a regular k x k convolution (MnasNet's "regular conv" choice).

This module and the block-type registry import only the standard library.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

from search_spaces.blocks.registry import BLOCK_TYPES
from search_spaces.widths import make_divisible, se_channels

__all__ = ["ACTS", "KERNELS", "STRIDES", "MAX_CHANNELS", "StemSpec", "BlockSpec", "HeadSpec", "ArchSpec",
           "make_divisible", "se_channels", "residual_allowed", "with_auto_skip", "scale_width"]

ACTS = ("relu", "relu6", "hswish")
KERNELS = (1, 3, 5, 7)
STRIDES = (1, 2)
MAX_CHANNELS = 1 << 16


def _check_choice(owner: str, name: str, value: object, allowed: tuple) -> None:
    if value not in allowed:
        raise ValueError(f"{owner}.{name} = {value!r} is not allowed; expected one of {allowed}")


def _check_int(owner: str, name: str, value: object, low: int = 1, high: int = MAX_CHANNELS) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{owner}.{name} = {value!r} is not allowed; expected an integer in [{low}, {high}]")


def _check_bool(owner: str, name: str, value: object) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"{owner}.{name} = {value!r} is not allowed; expected True or False")


@dataclass(frozen=True)
class StemSpec:
    """The first convolution (Table 1 row 1: conv2d 3x3, 16 filters, h-swish, stride 2)."""

    out_channels: int = 16
    kernel: int = 3
    stride: int = 2
    act: str = "hswish"

    def __post_init__(self) -> None:
        _check_int("stem", "out_channels", self.out_channels)
        _check_choice("stem", "kernel", self.kernel, KERNELS)
        _check_choice("stem", "stride", self.stride, STRIDES)
        _check_choice("stem", "act", self.act, ACTS)


@dataclass(frozen=True)
class BlockSpec:
    """One row of the paper's table: operator, kernel, stride, exp size, #out, SE, NL.

    ``exp_channels`` is absolute (never a ratio), and ``None`` for an operator that does not
    expand (``op='conv'``; the block type's ``expands``).
    ``skip`` adds the identity residual; it is only valid where stride is 1 and the
    block keeps its width (checked by :class:`ArchSpec`, which knows the input width).
    """

    op: str
    kernel: int
    stride: int
    exp_channels: int | None
    out_channels: int
    se: bool = False
    act: str = "relu"
    skip: bool = False

    def __post_init__(self) -> None:
        _check_choice("block", "op", self.op, tuple(BLOCK_TYPES))
        _check_choice("block", "kernel", self.kernel, KERNELS)
        _check_choice("block", "stride", self.stride, STRIDES)
        if BLOCK_TYPES[self.op].expands:
            _check_int("block", "exp_channels", self.exp_channels)
        elif self.exp_channels is not None:
            raise ValueError(f"block.exp_channels = {self.exp_channels!r} is not allowed for op {self.op!r}; expected None")
        _check_int("block", "out_channels", self.out_channels)
        _check_bool("block", "se", self.se)
        _check_choice("block", "act", self.act, ACTS)
        _check_bool("block", "skip", self.skip)


@dataclass(frozen=True)
class HeadSpec:
    """The last stage: 1x1 feature conv (BN, act), global pool, optional 1x1 hidden conv
    without BN (the efficient last stage of section 5.1), dropout, classifier.

    ``hidden_channels=None`` gives the MobileNetV2/MnasNet head (pool -> classifier).
    """

    feature_channels: int = 960
    hidden_channels: int | None = 1280
    act: str = "hswish"
    dropout: float = 0.2

    def __post_init__(self) -> None:
        _check_int("head", "feature_channels", self.feature_channels)
        if self.hidden_channels is not None:
            _check_int("head", "hidden_channels", self.hidden_channels)
        _check_choice("head", "act", self.act, ACTS)
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, (int, float)) or not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"head.dropout = {self.dropout!r} is not allowed; expected a number in [0, 1)")
        object.__setattr__(self, "dropout", float(self.dropout))


@dataclass(frozen=True)
class ArchSpec:
    """A whole network: input shape, stem, blocks, head and class count."""

    blocks: tuple[BlockSpec, ...]
    stem: StemSpec = field(default_factory=StemSpec)
    head: HeadSpec = field(default_factory=HeadSpec)
    resolution: int = 224
    in_channels: int = 3
    num_classes: int = 1000

    def __post_init__(self) -> None:
        if isinstance(self.blocks, list):
            object.__setattr__(self, "blocks", tuple(self.blocks))
        if not isinstance(self.blocks, tuple) or not self.blocks:
            raise ValueError(f"arch.blocks = {self.blocks!r} is not allowed; expected a non-empty tuple of BlockSpec")
        for kind, value in (("stem", self.stem), ("head", self.head)):
            expected = StemSpec if kind == "stem" else HeadSpec
            if not isinstance(value, expected):
                raise ValueError(f"arch.{kind} = {value!r} is not allowed; expected a {expected.__name__}")
        _check_int("arch", "resolution", self.resolution, 1, 8192)
        _check_int("arch", "in_channels", self.in_channels, 1, 1024)
        _check_int("arch", "num_classes", self.num_classes, 1, 1_000_000)
        self._check_blocks()

    def _check_blocks(self) -> None:
        in_channels = self.stem.out_channels
        for index, block in enumerate(self.blocks):
            if not isinstance(block, BlockSpec):
                raise ValueError(f"arch.blocks[{index}] = {block!r} is not allowed; expected a BlockSpec")
            if block.skip and not (block.stride == 1 and in_channels == block.out_channels):
                raise ValueError(
                    f"arch.blocks[{index}].skip = True is not allowed: a residual needs stride 1 and "
                    f"in_channels == out_channels, got stride {block.stride}, {in_channels} -> {block.out_channels}"
                )
            in_channels = block.out_channels

    def in_channels_of(self, index: int) -> int:
        """Input width of block ``index`` (the stem's width for block 0)."""
        return self.stem.out_channels if index == 0 else self.blocks[index - 1].out_channels

    def input_resolutions(self) -> tuple[int, ...]:
        """Input feature-map side length of every block (``ceil`` division per stride-2 step,
        as a padded conv computes it)."""
        side = _conv_out(self.resolution, self.stem.stride)
        sides = []
        for block in self.blocks:
            sides.append(side)
            side = _conv_out(side, block.stride)
        return tuple(sides)

    @property
    def final_resolution(self) -> int:
        side = _conv_out(self.resolution, self.stem.stride)
        for block in self.blocks:
            side = _conv_out(side, block.stride)
        return side

    def replace(self, **changes: object) -> "ArchSpec":
        """A copy with ``changes`` applied (validated again)."""
        return replace(self, **changes)

    def replace_block(self, index: int, **changes: object) -> "ArchSpec":
        """A copy with block ``index`` changed."""
        blocks = list(self.blocks)
        blocks[index] = replace(blocks[index], **changes)
        return replace(self, blocks=tuple(blocks))


def _conv_out(side: int, stride: int) -> int:
    return (side + stride - 1) // stride


def residual_allowed(spec_blocks: tuple[BlockSpec, ...], stem_channels: int) -> tuple[bool, ...]:
    """For each block, whether an identity residual is shape-valid (stride 1, in == out)."""
    allowed, in_channels = [], stem_channels
    for block in spec_blocks:
        allowed.append(block.stride == 1 and in_channels == block.out_channels)
        in_channels = block.out_channels
    return tuple(allowed)


def with_auto_skip(blocks: tuple[BlockSpec, ...] | list[BlockSpec], stem_channels: int) -> tuple[BlockSpec, ...]:
    """Blocks with ``skip`` set wherever a residual is shape-valid, as torchvision and timm
    do for MobileNetV2/V3 (``use_res_connect = stride == 1 and in == out``)."""
    blocks = tuple(blocks)
    return tuple(replace(b, skip=ok) for b, ok in zip(blocks, residual_allowed(blocks, stem_channels)))


def scale_width(spec: ArchSpec, multiplier: float, divisor: int = 8) -> ArchSpec:
    """Width multiplier (MobileNetV3 Table 3, "V3-Large 0.75"): a new spec.

    Output widths are multiplied and rounded with :func:`make_divisible`; each expansion
    width keeps its *ratio* to the block's input (exp = make_divisible(ratio x new input)),
    as the paper's TF implementation and timm do (``expand_input_by_factor``), which is what
    reproduces Table 3 (Large 0.75: 4.0M params, 155M MAdds; Small 0.75: 2.0M, 44M). The
    last conv before the classifier (the hidden conv, or the feature conv of a head without
    one, as in MobileNetV2) is kept below 1.0 (TF's fine-grain classification mode) and
    scaled above. Skips stay where still valid.
    """
    if isinstance(multiplier, bool) or not isinstance(multiplier, (int, float)) or not multiplier > 0:
        raise ValueError(f"width multiplier = {multiplier!r} is not allowed; expected a number > 0")
    if multiplier == 1.0:
        return spec

    def scale(channels: int) -> int:
        return make_divisible(channels * multiplier, divisor)

    stem = replace(spec.stem, out_channels=scale(spec.stem.out_channels))
    blocks, in_channels = [], stem.out_channels
    for index, block in enumerate(spec.blocks):
        exp = block.exp_channels
        if exp is not None:
            ratio = exp / spec.in_channels_of(index)
            exp = in_channels if ratio == 1 else make_divisible(in_channels * ratio, divisor)
        blocks.append(replace(block, exp_channels=exp, out_channels=scale(block.out_channels)))
        in_channels = blocks[-1].out_channels
    ok = residual_allowed(tuple(blocks), stem.out_channels)
    blocks = [replace(b, skip=b.skip and allowed) for b, allowed in zip(blocks, ok)]
    head = spec.head
    if head.hidden_channels is not None:
        hidden = scale(head.hidden_channels) if multiplier > 1.0 else head.hidden_channels
        head = replace(head, feature_channels=scale(head.feature_channels), hidden_channels=hidden)
    elif multiplier > 1.0:  # MobileNetV2/MnasNet: the last conv is the feature conv, kept below 1.0
        head = replace(head, feature_channels=scale(head.feature_channels))
    return replace(spec, stem=stem, blocks=tuple(blocks), head=head)
