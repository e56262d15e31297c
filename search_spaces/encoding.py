"""Exact encodings of an :class:`ArchSpec`: a canonical one-line string and versioned JSON.

String grammar (fields always present, fixed order, ``|`` between parts)::

    r224_i3_n1000|stem_k3_s2_c16_hs|ir_k3_s1_h16_c16_se0_re_sk1|cn_k3_s2_c24_se1_hs_sk0|head_c960_h1280_hs_d0.2

Each block type (:mod:`search_spaces.blocks`) has its token: ``ir`` is the bottleneck, ``cn``
a regular conv. A block type that expands writes ``h``, its hidden (expanded) channels as an
absolute count like the head's ``h``; one that does not leaves it out. Activations ``re``
(ReLU), ``r6`` (ReLU6), ``hs`` (h-swish); ``h0`` = no hidden head conv.
``parse_spec(format_spec(s)) == s`` for every valid spec. Strings written before spelt the
width ``e`` (``ir_k3_s1_e16_...``), which reads as timm's expansion *ratio*; the parser still
reads them, for every expanding block type.
"""
from __future__ import annotations

import json
import re
from typing import Any

from search_spaces.blocks.base import BlockType
from search_spaces.blocks.registry import BLOCK_TYPES, block_type, block_type_of_token
from search_spaces.spec import ArchSpec, BlockSpec, HeadSpec, StemSpec

SCHEMA_VERSION = 1
_ACT_TOKENS = {"relu": "re", "relu6": "r6", "hswish": "hs"}
_TOKEN_ACTS = {v: k for k, v in _ACT_TOKENS.items()}

_HEADER = re.compile(r"r(\d+)_i(\d+)_n(\d+)")
_STEM = re.compile(r"stem_k(\d+)_s(\d+)_c(\d+)_(re|r6|hs)")
_HEAD = re.compile(r"head_c(\d+)_h(\d+)_(re|r6|hs)_d([0-9.e-]+)")


def format_block(block: BlockSpec) -> str:
    """The canonical token of one block (``<token>_k3_s1[_h16]_c16_se0_re_sk1``)."""
    act, se, sk = _ACT_TOKENS[block.act], int(block.se), int(block.skip)
    kind = block_type(block.op)
    exp = f"_h{block.exp_channels}" if kind.expands else ""
    return f"{kind.token}_k{block.kernel}_s{block.stride}{exp}_c{block.out_channels}_se{se}_{act}_sk{sk}"


def _block_pattern(kind: BlockType) -> re.Pattern:
    exp = r"_[eh](\d+)" if kind.expands else ""
    return re.compile(rf"{kind.token}_k(\d+)_s(\d+){exp}_c(\d+)_se([01])_(re|r6|hs)_sk([01])")


def format_spec(spec: ArchSpec) -> str:
    """The canonical one-line string of ``spec``."""
    stem, head = spec.stem, spec.head
    parts = [
        f"r{spec.resolution}_i{spec.in_channels}_n{spec.num_classes}",
        f"stem_k{stem.kernel}_s{stem.stride}_c{stem.out_channels}_{_ACT_TOKENS[stem.act]}",
        *(format_block(b) for b in spec.blocks),
        f"head_c{head.feature_channels}_h{head.hidden_channels or 0}_{_ACT_TOKENS[head.act]}_d{head.dropout!r}",
    ]
    return "|".join(parts)


def _match(pattern: re.Pattern, token: str, what: str) -> re.Match:
    match = pattern.fullmatch(token)
    if match is None:
        raise ValueError(f"cannot parse {what} token {token!r}; expected the form {pattern.pattern!r}")
    return match


def _parse_block(token: str) -> BlockSpec:
    kind = block_type_of_token(token.split("_", 1)[0])
    if kind is None:
        tokens = tuple(t.token for t in BLOCK_TYPES.values())
        raise ValueError(f"cannot parse block token {token!r}; expected a block type token {tokens} first")
    groups = list(_match(_block_pattern(kind), token, "block").groups())
    exp = int(groups.pop(2)) if kind.expands else None
    k, s, c, se, act, sk = groups
    return BlockSpec(kind.op, int(k), int(s), exp, int(c), se == "1", _TOKEN_ACTS[act], sk == "1")


def canonical(text: str) -> str:
    """The canonical string of a spec string in any spelling the parser reads (``e`` or ``h``
    for a block's width): what to compare when strings from files meet strings written now."""
    return format_spec(parse_spec(text))


def parse_spec(text: str) -> ArchSpec:
    """Inverse of :func:`format_spec`; raises ``ValueError`` naming the bad token."""
    parts = text.strip().split("|")
    if len(parts) < 4:
        raise ValueError(f"cannot parse spec string {text!r}: expected header|stem|blocks...|head")
    r, i, n = (int(v) for v in _match(_HEADER, parts[0], "header").groups())
    k, s, c, act = _match(_STEM, parts[1], "stem").groups()
    stem = StemSpec(int(c), int(k), int(s), _TOKEN_ACTS[act])
    fc, hc, hact, drop = _match(_HEAD, parts[-1], "head").groups()
    try:
        dropout = float(drop)
    except ValueError as exc:
        raise ValueError(f"cannot parse head dropout {drop!r}") from exc
    head = HeadSpec(int(fc), int(hc) or None, _TOKEN_ACTS[hact], dropout)
    blocks = tuple(_parse_block(t) for t in parts[2:-1])
    return ArchSpec(blocks=blocks, stem=stem, head=head, resolution=r, in_channels=i, num_classes=n)


_STEM_KEYS = ("out_channels", "kernel", "stride", "act")
_BLOCK_KEYS = ("op", "kernel", "stride", "exp_channels", "out_channels", "se", "act", "skip")
_HEAD_KEYS = ("feature_channels", "hidden_channels", "act", "dropout")
_TOP_KEYS = ("schema_version", "resolution", "in_channels", "num_classes", "stem", "blocks", "head")


def spec_to_dict(spec: ArchSpec) -> dict[str, Any]:
    """Versioned JSON-safe dict of ``spec``."""
    return {
        "schema_version": SCHEMA_VERSION,
        "resolution": spec.resolution,
        "in_channels": spec.in_channels,
        "num_classes": spec.num_classes,
        "stem": {k: getattr(spec.stem, k) for k in _STEM_KEYS},
        "blocks": [{k: getattr(b, k) for k in _BLOCK_KEYS} for b in spec.blocks],
        "head": {k: getattr(spec.head, k) for k in _HEAD_KEYS},
    }


def _fields(data: Any, keys: tuple[str, ...], where: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ValueError(f"spec JSON: {where} must be an object, got {type(data).__name__}")
    unknown, missing = set(data) - set(keys), set(keys) - set(data)
    if unknown or missing:
        raise ValueError(f"spec JSON: {where} has unknown keys {sorted(unknown)} / missing keys {sorted(missing)}; "
                         f"expected exactly {list(keys)}")
    return data


def spec_from_dict(data: Any) -> ArchSpec:
    """Inverse of :func:`spec_to_dict`; rejects other schema versions and unknown keys."""
    top = _fields(data, _TOP_KEYS, "the top level")
    if top["schema_version"] != SCHEMA_VERSION:
        raise ValueError(f"spec JSON: schema_version = {top['schema_version']!r} is not supported; expected {SCHEMA_VERSION}")
    if not isinstance(top["blocks"], list):
        raise ValueError("spec JSON: 'blocks' must be a list of block objects")
    blocks = tuple(BlockSpec(**_fields(b, _BLOCK_KEYS, f"blocks[{i}]")) for i, b in enumerate(top["blocks"]))
    return ArchSpec(
        blocks=blocks,
        stem=StemSpec(**_fields(top["stem"], _STEM_KEYS, "stem")),
        head=HeadSpec(**_fields(top["head"], _HEAD_KEYS, "head")),
        resolution=top["resolution"], in_channels=top["in_channels"], num_classes=top["num_classes"],
    )


def spec_to_json(spec: ArchSpec, indent: int | None = 2) -> str:
    return json.dumps(spec_to_dict(spec), indent=indent)


def spec_from_json(text: str) -> ArchSpec:
    """Parse a spec JSON document; ``ValueError`` on malformed JSON or an invalid spec."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"spec JSON is malformed: {exc}") from exc
    return spec_from_dict(data)
