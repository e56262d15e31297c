"""Width rewrites of an :class:`ArchSpec` for NetAdapt (MobileNetV3 section 4.2).

NetAdapt shrinks one layer at a time, but a residual connection ties the width of a block's
output to its input: every block of a chain of residual blocks, and the block (or stem) that
feeds the chain, must keep one shared "bottleneck" width (MobileNetV3 4.2, proposal (b)).
:func:`residual_groups` finds those ties; :func:`with_widths` applies several width changes
at once and validates the result.

Torch-free (standard library only), like ``spec.py``.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from search_spaces.blocks.registry import block_type
from search_spaces.spec import ArchSpec, BlockSpec, make_divisible, se_channels

STEM = -1
"""Index standing for the stem in :func:`residual_groups` and :func:`with_widths`: when
block 0 has a residual, its input is the stem's output, so the stem joins block 0's group."""

_BLOCK_FIELDS = ("out_channels", "exp_channels")


def residual_groups(spec: ArchSpec) -> tuple[tuple[int, ...], ...]:
    """The sets of layers whose output widths are tied by residual connections.

    A block with ``skip`` ties its output width to its input width, i.e. to the previous
    block's output (to the stem's when it is block 0, written :data:`STEM` = -1). Every
    block appears in exactly one group, in network order (a block that no residual ties is
    a group of one); the stem appears only when block 0 has a residual.

    MobileNetV3-Large: ``((-1, 0), (1, 2), (3, 4, 5), (6, 7, 8, 9), (10, 11), (12, 13, 14))``.
    """
    groups: list[list[int]] = []
    for index, block in enumerate(spec.blocks):
        if block.skip:
            if index == 0:
                groups.append([STEM, 0])
            else:
                groups[-1].append(index)
        else:
            groups.append([index])
    return tuple(tuple(group) for group in groups)


def expansion_convs(spec: ArchSpec) -> tuple[bool, ...]:
    """For each block, whether it has a 1x1 expansion conv (a bottleneck with exp != in; the
    block type's ``expansion_conv``)."""
    return tuple(block_type(b.op).expansion_conv(b, spec.in_channels_of(i)) for i, b in enumerate(spec.blocks))


def se_squeeze_widths(spec: ArchSpec) -> tuple[int | None, ...]:
    """For each block, the SE squeeze width the builder derives (``se_channels`` of the SE's
    input: exp for a bottleneck, out for a regular conv: the block type's ``se_input``),
    ``None`` without SE."""
    return tuple(se_channels(block_type(b.op).se_input(b)) if b.se else None for b in spec.blocks)


def with_widths(spec: ArchSpec, changes: Mapping[int, Mapping[str, int]], *,
                feature_channels: int | None = None) -> ArchSpec:
    """A copy of ``spec`` with several widths changed at once, validated again.

    Args:
        changes: block index -> ``{"out_channels": n, "exp_channels": m}`` (either or
            both); :data:`STEM` -> ``{"out_channels": n}`` for the stem.
        feature_channels: new width of the head's 1x1 feature conv (MobileNetV3 5.1).

    A bottleneck without expansion conv (exp == in: a depthwise-separable conv whose
    depthwise layer runs on the block's input) keeps that structure: unless ``changes``
    sets its exp, its exp follows its new input width. Residual validity is re-checked by
    :class:`ArchSpec` (change every member of a :func:`residual_groups` group together).
    SE squeeze widths are not part of the spec: the builder derives them from the new widths
    (:func:`se_squeeze_widths`), and ``se_channels`` never grows when its input shrinks.

    Raises:
        ValueError: an unknown index or field, a width that is not a positive integer, an
            exp on a regular conv, or a broken residual.
    """
    _check_changes(spec, changes)
    stem = spec.stem
    if STEM in changes:
        stem = replace(stem, out_channels=changes[STEM]["out_channels"])
    blocks: list[BlockSpec] = []
    in_channels = stem.out_channels
    for index, block in enumerate(spec.blocks):
        change = changes.get(index, {})
        exp = block.exp_channels
        if "exp_channels" in change:
            exp = change["exp_channels"]
        elif block_type(block.op).expands and exp == spec.in_channels_of(index):
            exp = in_channels
        blocks.append(replace(block, exp_channels=exp, out_channels=change.get("out_channels", block.out_channels)))
        in_channels = blocks[-1].out_channels
    head = spec.head if feature_channels is None else replace(spec.head, feature_channels=feature_channels)
    return replace(spec, stem=stem, blocks=tuple(blocks), head=head)


def widened(spec: ArchSpec, multiplier: float, ceilings: Sequence[tuple[int, int]] | None = None,
            divisor: int = 8) -> ArchSpec:
    """``spec`` with every block's widths multiplied by ``multiplier`` (>= 1), stem and head as
    they are: the width multiplier of MobileNet (MobileNetV3 Table 3) applied to the blocks, as
    MorphNet's uniform expansion grows a model to fill its budget.

    Output widths are multiplied and rounded with :func:`make_divisible`, one width per
    :func:`residual_groups` group (a group holding the stem keeps its width); an expansion width
    keeps its ratio to the block's new input. ``ceilings`` (one ``(out, exp)`` per block: the
    widest the block may become, e.g. what a supernet holds) caps both; a group takes its
    members' smallest cap, so residuals stay valid.
    """
    if isinstance(multiplier, bool) or not isinstance(multiplier, (int, float)) or not multiplier >= 1.0:
        raise ValueError(f"widening multiplier = {multiplier!r} is not allowed; expected a number >= 1")
    if ceilings is not None and len(ceilings) != len(spec.blocks):
        raise ValueError(f"widening ceilings: {len(ceilings)} given for {len(spec.blocks)} blocks")
    caps = list(ceilings) if ceilings is not None else [(10 ** 9, 10 ** 9)] * len(spec.blocks)
    outs: dict[int, int] = {}
    for group in residual_groups(spec):
        if STEM in group:
            continue
        width = make_divisible(spec.blocks[group[0]].out_channels * multiplier, divisor)
        outs.update({i: max(spec.blocks[i].out_channels, min(width, *(caps[j][0] for j in group))) for i in group})
    changes: dict[int, dict[str, int]] = {}
    in_old, in_new = spec.stem.out_channels, spec.stem.out_channels
    for index, block in enumerate(spec.blocks):
        change = {"out_channels": outs.get(index, block.out_channels)}
        if block_type(block.op).expands and block.exp_channels != in_old:
            exp = make_divisible(block.exp_channels / in_old * in_new, divisor)
            change["exp_channels"] = max(block.exp_channels, min(exp, caps[index][1]))
        changes[index] = change
        in_old, in_new = block.out_channels, change["out_channels"]
    return with_widths(spec, changes)


def _check_changes(spec: ArchSpec, changes: Mapping[int, Mapping[str, int]]) -> None:
    for index, change in changes.items():
        if index == STEM:
            if set(change) != {"out_channels"}:
                raise ValueError(f"with_widths changes[STEM] = {dict(change)!r} is not allowed; expected only 'out_channels'")
            continue
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(spec.blocks):
            raise ValueError(f"with_widths block index {index!r} is not allowed; expected STEM (-1) or 0..{len(spec.blocks) - 1}")
        unknown = set(change) - set(_BLOCK_FIELDS)
        if unknown or not change:
            raise ValueError(f"with_widths changes[{index}] = {dict(change)!r} is not allowed; expected keys from {_BLOCK_FIELDS}")
        if "exp_channels" in change and not block_type(spec.blocks[index].op).expands:
            raise ValueError(f"with_widths changes[{index}].exp_channels is not allowed: block {index} "
                             f"({spec.blocks[index].op!r}) has no expansion width, as a regular conv has none")


def same_layout(old: ArchSpec, new: ArchSpec) -> str | None:
    """``None`` when ``new`` differs from ``old`` only in channel widths (stem out, block exp
    and out, head feature width); otherwise a one-line reason naming the first difference."""
    if len(old.blocks) != len(new.blocks):
        return f"block count {len(old.blocks)} -> {len(new.blocks)}"
    for name in ("resolution", "in_channels", "num_classes"):
        if getattr(old, name) != getattr(new, name):
            return f"arch.{name} {getattr(old, name)} -> {getattr(new, name)}"
    if replace(old.stem, out_channels=1) != replace(new.stem, out_channels=1):
        return f"stem {old.stem} -> {new.stem} changes more than the width"
    for index, (a, b) in enumerate(zip(old.blocks, new.blocks)):
        if a.op != b.op or _widthless(a) != _widthless(b):
            return f"block {index}: {a} -> {b} changes more than widths"
    if replace(old.head, feature_channels=1) != replace(new.head, feature_channels=1):
        return f"head {old.head} -> {new.head} changes more than the feature width"
    return None


def _widthless(block: BlockSpec) -> tuple:
    return (block.op, block.kernel, block.stride, block.se, block.act, block.skip)
