"""Reference architectures by name: MobileNetV3-Large/Small (Tables 1-2), MnasNet-A1, MobileNetV2.

Each is a function of resolution, width multiplier, class count and input channels that
returns an :class:`ArchSpec`. Channel counts are the papers' absolute numbers.
"""
from __future__ import annotations

from typing import Callable

from search_spaces.spec import ArchSpec, BlockSpec, HeadSpec, StemSpec, scale_width, with_auto_skip


def _bneck(k: int, exp: int, out: int, se: bool, act: str, s: int) -> BlockSpec:
    return BlockSpec("bneck", k, s, exp, out, se, act)


def _mobilenetv3_large_blocks() -> list[BlockSpec]:
    """Table 1 rows (kernel, exp size, #out, SE, NL, s)."""
    return [
        _bneck(3, 16, 16, False, "relu", 1),  # 112x112 in
        _bneck(3, 64, 24, False, "relu", 2),
        _bneck(3, 72, 24, False, "relu", 1),  # 56x56 in
        _bneck(5, 72, 40, True, "relu", 2),
        _bneck(5, 120, 40, True, "relu", 1),  # 28x28 in
        _bneck(5, 120, 40, True, "relu", 1),
        _bneck(3, 240, 80, False, "hswish", 2),
        _bneck(3, 200, 80, False, "hswish", 1),  # 14x14 in
        _bneck(3, 184, 80, False, "hswish", 1),
        _bneck(3, 184, 80, False, "hswish", 1),
        _bneck(3, 480, 112, True, "hswish", 1),
        _bneck(3, 672, 112, True, "hswish", 1),
        _bneck(5, 672, 160, True, "hswish", 2),
        _bneck(5, 960, 160, True, "hswish", 1),  # 7x7 in
        _bneck(5, 960, 160, True, "hswish", 1),
    ]


def _mobilenetv3_small_blocks() -> list[BlockSpec]:
    """Table 2 rows (kernel, exp size, #out, SE, NL, s)."""
    return [
        _bneck(3, 16, 16, True, "relu", 2),  # 112x112 in
        _bneck(3, 72, 24, False, "relu", 2),  # 56x56 in
        _bneck(3, 88, 24, False, "relu", 1),  # 28x28 in
        _bneck(5, 96, 40, True, "hswish", 2),
        _bneck(5, 240, 40, True, "hswish", 1),  # 14x14 in
        _bneck(5, 240, 40, True, "hswish", 1),
        _bneck(5, 120, 48, True, "hswish", 1),
        _bneck(5, 144, 48, True, "hswish", 1),
        _bneck(5, 288, 96, True, "hswish", 2),
        _bneck(5, 576, 96, True, "hswish", 1),  # 7x7 in
        _bneck(5, 576, 96, True, "hswish", 1),
    ]


def _stage_blocks(stages: list[tuple[str, int, int, int, int, bool, str]], in_channels: int) -> list[BlockSpec]:
    """Expand (op, kernel, expansion ratio, out, repeats, se, act) stages, first block with
    the stage stride, into absolute-width blocks (MnasNet/MobileNetV2 stage notation)."""
    blocks = []
    for op, kernel, ratio, out, repeats, stride, se, act in stages:
        for i in range(repeats):
            exp = None if op == "conv" else in_channels * ratio
            blocks.append(BlockSpec(op, kernel, stride if i == 0 else 1, exp, out, se, act))
            in_channels = out
    return blocks


def _mnasnet_a1_blocks() -> list[BlockSpec]:
    """MnasNet-A1 (MnasNet paper Figure 7): SepConv, then MBConv stages."""
    return _stage_blocks([
        ("bneck", 3, 1, 16, 1, 1, False, "relu"),  # 112x112 in, SepConv 3x3
        ("bneck", 3, 6, 24, 2, 2, False, "relu"),
        ("bneck", 5, 3, 40, 3, 2, True, "relu"),  # 56x56 in
        ("bneck", 3, 6, 80, 4, 2, False, "relu"),  # 28x28 in
        ("bneck", 3, 6, 112, 2, 1, True, "relu"),  # 14x14 in
        ("bneck", 5, 6, 160, 3, 2, True, "relu"),
        ("bneck", 3, 6, 320, 1, 1, False, "relu"),  # 7x7 in
    ], in_channels=32)


def _mobilenetv2_blocks() -> list[BlockSpec]:
    """MobileNetV2 (t, c, n, s) table: (1,16,1,1) (6,24,2,2) (6,32,3,2) (6,64,4,2) (6,96,3,1) (6,160,3,2) (6,320,1,1)."""
    return _stage_blocks([
        ("bneck", 3, t, c, n, s, False, "relu6")
        for t, c, n, s in [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]
    ], in_channels=32)


def _assemble(blocks: list[BlockSpec], stem: StemSpec, head: HeadSpec, *, resolution: int, width: float,
              num_classes: int, in_channels: int) -> ArchSpec:
    spec = ArchSpec(blocks=with_auto_skip(blocks, stem.out_channels), stem=stem, head=head,
                    resolution=resolution, in_channels=in_channels, num_classes=num_classes)
    return scale_width(spec, width)


def mobilenetv3_large(*, resolution: int = 224, width: float = 1.0, num_classes: int = 1000, in_channels: int = 3) -> ArchSpec:
    """MobileNetV3-Large (Table 1)."""
    return _assemble(_mobilenetv3_large_blocks(), StemSpec(16, 3, 2, "hswish"), HeadSpec(960, 1280, "hswish", 0.2),
                     resolution=resolution, width=width, num_classes=num_classes, in_channels=in_channels)


def mobilenetv3_small(*, resolution: int = 224, width: float = 1.0, num_classes: int = 1000, in_channels: int = 3) -> ArchSpec:
    """MobileNetV3-Small (Table 2; no SE on the final 1x1 conv, as in torchvision and timm)."""
    return _assemble(_mobilenetv3_small_blocks(), StemSpec(16, 3, 2, "hswish"), HeadSpec(576, 1024, "hswish", 0.2),
                     resolution=resolution, width=width, num_classes=num_classes, in_channels=in_channels)


def mnasnet_a1(*, resolution: int = 224, width: float = 1.0, num_classes: int = 1000, in_channels: int = 3) -> ArchSpec:
    """MnasNet-A1 (MnasNet Figure 7) with this builder's SE (hard-sigmoid gate, exp/4 squeeze)."""
    return _assemble(_mnasnet_a1_blocks(), StemSpec(32, 3, 2, "relu"), HeadSpec(1280, None, "relu", 0.2),
                     resolution=resolution, width=width, num_classes=num_classes, in_channels=in_channels)


def mobilenetv2(*, resolution: int = 224, width: float = 1.0, num_classes: int = 1000, in_channels: int = 3) -> ArchSpec:
    """MobileNetV2 1.0 (Sandler et al. 2018, Table 2)."""
    return _assemble(_mobilenetv2_blocks(), StemSpec(32, 3, 2, "relu6"), HeadSpec(1280, None, "relu6", 0.2),
                     resolution=resolution, width=width, num_classes=num_classes, in_channels=in_channels)


REFERENCE_SPECS: dict[str, Callable[..., ArchSpec]] = {
    "mobilenetv3-large": mobilenetv3_large,
    "mobilenetv3-small": mobilenetv3_small,
    "mnasnet-a1": mnasnet_a1,
    "mobilenetv2": mobilenetv2,
}


def reference_spec(name: str, *, resolution: int = 224, width: float = 1.0, num_classes: int = 1000,
                   in_channels: int = 3) -> ArchSpec:
    """The reference architecture ``name``; raises ``ValueError`` listing the known names."""
    if name not in REFERENCE_SPECS:
        raise ValueError(f"unknown reference spec {name!r}; expected one of {sorted(REFERENCE_SPECS)}")
    return REFERENCE_SPECS[name](resolution=resolution, width=width, num_classes=num_classes, in_channels=in_channels)
