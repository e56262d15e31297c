"""timm ``arch_def`` block strings out of and into the blocks of a spec.

timm (``efficientnet_builder._decode_block_str``) writes expansion as a ratio of the input
width: ``ir_r1_k3_s2_e4_c24_nre``. Here:

* out: ``ds`` for a bottleneck without expansion conv (exp == in), ``ir`` otherwise with
  ``e`` = exp / in, ``cn`` for a regular conv; ``se0.25`` (of the expansion width, as timm's
  MobileNetV3 does); activation ``nre``/``nr6``, none for the default h-swish; ``noskip``
  where a residual would be shape-valid but the spec has none. One block per string, a new
  stage at every stride-2 block.
* in: exp = round(in * e), so a spec whose exp sizes are not what rounding the printed ratio
  gives would not round-trip; ratios are printed with up to 6 significant digits, enough for
  every exp below 10^5.

Not round-tripped (one way or the other): the stem, head, resolution, input channels and
class count (timm passes them as model arguments, so :func:`blocks_from_arch_def` takes
them from a template spec), SE on a regular conv (timm's ``cn`` has none: export refuses),
and timm options MobileNAS lacks (``sw``/``mi`` activations, ``er``/``cc``/``uir`` blocks,
``fe``/``pc`` noise): import refuses them with a message.
"""
from __future__ import annotations

import re

from search_spaces.blocks.base import BlockType
from search_spaces.blocks.registry import BLOCK_TYPES, block_type
from search_spaces.spec import ArchSpec, BlockSpec, residual_allowed

_ACT_OUT = {"relu": "_nre", "relu6": "_nr6", "hswish": ""}
_ACT_IN = {"re": "relu", "r6": "relu6", "hs": "hswish"}


def _block_string(block: BlockSpec, in_channels: int, can_skip: bool) -> str:
    noskip = "_noskip" if can_skip and not block.skip else ""
    act = _ACT_OUT[block.act]
    se = "_se0.25" if block.se else ""
    form = block_type(block.op).timm
    if form is None:
        raise ValueError(f"block type {block.op!r} has no timm arch_def form")
    return f"{form.export(block, in_channels)}{se}{act}{noskip}"


def to_arch_def(spec: ArchSpec) -> list[list[str]]:
    """The blocks of ``spec`` as a timm ``arch_def`` (list of stages of block strings)."""
    stages: list[list[str]] = []
    allowed = residual_allowed(spec.blocks, spec.stem.out_channels)
    for index, block in enumerate(spec.blocks):
        text = _block_string(block, spec.in_channels_of(index), allowed[index])
        if not stages or block.stride == 2:
            stages.append([])
        stages[-1].append(text)
    return stages


_TOKEN = re.compile(r"([a-z]+)([0-9.]*)")


def _parse_options(text: str) -> tuple[str, dict[str, str]]:
    op, *tokens = text.split("_")
    options: dict[str, str] = {}
    for token in tokens:
        if token == "noskip":
            options["noskip"] = "1"
            continue
        if token.startswith("n") and token[1:] in _ACT_IN:
            options["act"] = _ACT_IN[token[1:]]
            continue
        match = _TOKEN.fullmatch(token)
        if match is None or match.group(1) not in ("r", "k", "s", "e", "c", "se"):
            raise ValueError(f"timm block {text!r}: option {token!r} is not supported by MobileNAS")
        options[match.group(1)] = match.group(2)
    return op, options


def _timm_types() -> dict[str, BlockType]:
    """timm block token -> the block type that reads it."""
    return {op: kind for kind in BLOCK_TYPES.values() if kind.timm is not None for op in kind.timm.ops}


def _parse_block(text: str, in_channels: int) -> list[BlockSpec]:
    op, o = _parse_options(text)
    kinds = _timm_types()
    if op not in kinds:
        raise ValueError(f"timm block {text!r}: block type {op!r} is not supported; expected {_or_list(tuple(kinds))}")
    try:
        repeats, kernel, stride, out = int(o.get("r", "1")), int(o["k"]), int(o.get("s", "1")), int(o["c"])
    except (KeyError, ValueError) as exc:
        raise ValueError(f"timm block {text!r}: missing or malformed k/s/c/r option") from exc
    se, act = "se" in o, o.get("act", "hswish")
    if se and abs(float(o["se"]) - 0.25) > 1e-9:
        raise ValueError(f"timm block {text!r}: only se0.25 is supported")
    kind, blocks = kinds[op], []
    for i in range(repeats):
        s = stride if i == 0 else 1
        exp = kind.timm.exp_of(op, o.get("e", "1"), in_channels)
        skip = "noskip" not in o and s == 1 and in_channels == out
        blocks.append(BlockSpec(kind.op, kernel, s, exp, out, se, act, skip))
        in_channels = out
    return blocks


def _or_list(names: tuple[str, ...]) -> str:
    """``ds, ir or cn``."""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def blocks_from_arch_def(arch_def: list[list[str]], template: ArchSpec) -> ArchSpec:
    """A spec whose blocks come from ``arch_def`` and everything else from ``template``."""
    blocks: list[BlockSpec] = []
    in_channels = template.stem.out_channels
    for stage in arch_def:
        for text in stage:
            new = _parse_block(text, in_channels)
            blocks += new
            in_channels = new[-1].out_channels
    return template.replace(blocks=tuple(blocks))
