"""What MobileNAS knows about one block type (operator), in one place, as timm's
``_make_block`` keeps each block type's construction in one branch.

A :class:`BlockType` is torch-free data plus hooks; every module that used to branch on
``block.op`` asks the registry (:mod:`search_spaces.blocks.registry`) instead:

================================  ===========================================================
field / hook                      used by
================================  ===========================================================
``op``                            ``BlockSpec.op`` (``spec.py`` validates it against the registry)
``expands``                       ``spec.py`` (``exp_channels`` an absolute width or ``None``),
                                  ``rewrite.py`` (which widths NetAdapt may change), ``keys.py``
``token``                         the canonical string (``encoding.py``: ``ir_k3_s1_e16_...``)
``table_name``                    the paper table's operator column (``paper_table.py``)
``cost``                          parameters and MAdds (``counting.py``)
``activations``                   activation traffic of a latency key (``latency/keys.py``)
``build``                         the torch module (``builder.py``; imports torch only when called)
``timm``                          timm ``arch_def`` strings (``timm_arch.py``), ``None``: no form
``parts``                         the weighted parts and the channels each reads and writes
                                  (``netadapt/transfer.py``: NetAdapt's weight transfer)
``expansion_conv``                whether the block has a 1x1 expansion conv (``rewrite.py``)
================================  ===========================================================

Hooks receive the ``BlockSpec`` (duck-typed: this module never imports ``spec.py``, which
imports the registry) with the block's input width and side.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from search_spaces.costs import Cost

Block = Any
"""A ``search_spaces.spec.BlockSpec`` (not imported here: the spec imports the registry)."""


def exp_differs(block: Block, in_channels: int) -> bool:
    """The bottleneck convention: an expansion width equal to the input means no expansion conv."""
    return block.exp_channels is not None and block.exp_channels != in_channels


@dataclass(frozen=True)
class TimmForm:
    """A block type's timm ``arch_def`` spelling (``efficientnet_builder._decode_block_str``).

    ``export(block, in_channels)`` returns the string up to the width (``ir_r1_k3_s2_e4_c24``;
    the SE, activation and ``noskip`` suffixes are common) or raises ``ValueError`` when the
    block has no timm form; ``ops`` are the timm block tokens it reads; ``exp_of(op, ratio,
    in_channels)`` is the absolute expansion width from timm's ``e`` option as written
    (``None`` for a type that does not expand)."""

    ops: tuple[str, ...]
    export: Callable[[Block, int], str]
    exp_of: Callable[[str, str, int], int | None]


@dataclass(frozen=True)
class Part:
    """One weighted part of a block's module, named as the module names it: a conv with batch
    norm (``kind`` ``"conv"``, a ``search_spaces.layers.ConvBNAct``) writing the channel set
    ``rows`` from ``cols``, or a squeeze-excite (``kind`` ``"se"``) on ``rows``. Channel sets:
    ``"in"`` (the block's input), ``"exp"`` (its hidden, expanded width), ``"out"``; ``cols``
    None is a depthwise conv, which reads the channels it writes."""

    name: str
    rows: str
    cols: str | None = None
    kind: str = "conv"


@dataclass(frozen=True)
class BlockType:
    """One operator: see the module docstring for who uses each field."""

    op: str
    token: str
    table_name: str
    expands: bool
    cost: Callable[[Block, int, int], Cost]
    activations: Callable[[Block, int, int], int]
    build: Callable[..., Any]
    timm: TimmForm | None = None
    parts: Callable[[Block, bool], tuple[Part, ...]] | None = None
    """``parts(block, has_expansion_conv)``: the block's weighted parts in forward order;
    ``None``: NetAdapt cannot carry its weights to a narrower spec."""
    expansion_conv: Callable[[Block, int], bool] = exp_differs

    def __post_init__(self) -> None:
        if not self.token.isalnum() or not self.token.islower() or self.token in ("stem", "head"):
            raise ValueError(f"block type {self.op!r}: token {self.token!r} is not allowed; expected lowercase "
                             "letters/digits other than 'stem' and 'head'")

    def parts_of(self, block: Block, has_expansion_conv: bool) -> tuple[Part, ...]:
        """:attr:`parts`, or ``ValueError`` naming the block type that declares none."""
        if self.parts is None:
            raise ValueError(f"block type {self.op!r} declares no parts; NetAdapt cannot carry its weights")
        return self.parts(block, has_expansion_conv)

    def se_input(self, block: Block) -> int:
        """Width of the map the block's SE runs on (its expansion width, else its output)."""
        return block.exp_channels if self.expands else block.out_channels
