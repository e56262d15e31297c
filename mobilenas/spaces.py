"""Registry of search spaces by name (what ``--space`` accepts)."""
from __future__ import annotations

from typing import Callable

from search_spaces.mnasnet_space import MnasNetSpace

SPACES: dict[str, Callable[..., MnasNetSpace]] = {
    "mnasnet": MnasNetSpace,
}


def make_space(name: str, *, resolution: int = 224, num_classes: int = 1000, in_channels: int = 3) -> MnasNetSpace:
    """The space ``name`` at the given input shape and class count."""
    if name not in SPACES:
        raise ValueError(f"unknown space {name!r}; expected one of {sorted(SPACES)}")
    return SPACES[name](resolution=resolution, num_classes=num_classes, in_channels=in_channels)
