"""The block types (operators) by ``BlockSpec.op``: one line per operator. A new one is a
module ``search_spaces/blocks/<name>.py`` (its :class:`BlockType`), the torch module it
builds (``<name>_module.py``) and a line here; tests/test_extension_points.py registers a
toy one from a test module and checks every consumer covers it."""
from __future__ import annotations

from search_spaces.blocks.base import BlockType
from search_spaces.blocks.bneck import BNECK
from search_spaces.blocks.conv import CONV

BLOCK_TYPES: dict[str, BlockType] = {
    "bneck": BNECK,
    "conv": CONV,
}


def block_type(op: str) -> BlockType:
    """The block type of ``BlockSpec.op`` ``op``; ``ValueError`` naming the known ones."""
    try:
        return BLOCK_TYPES[op]
    except (KeyError, TypeError):
        raise ValueError(f"block.op = {op!r} is not allowed; expected one of {tuple(BLOCK_TYPES)}") from None


def block_type_of_token(token: str) -> BlockType | None:
    """The block type whose canonical-string token is ``token`` (``None`` if none is)."""
    return next((t for t in BLOCK_TYPES.values() if t.token == token), None)
