"""The search spaces by name (what ``--space`` accepts) and the protocol every space meets.

Strategies see a space only through :class:`SearchSpace`: a fixed vector of categorical
decisions (MnasNet section 4.1, its controller emits one token per decision), decoded to an
``ArchSpec`` and canonicalized so that one architecture has one encoding (ARCHITECTURE.md: ``ArchSpec``, the one language).
"""
from __future__ import annotations

from typing import Callable, Iterable, Protocol, runtime_checkable

import numpy as np

from search_spaces.mnasnet_space import (MnasNetMBConvSpace, MnasNetSmallHeadSpace, MnasNetSmallMBConvSpace, MnasNetSpace,
                                         MnasNetV3SmallMBConvSpace, MnasNetV3SmallSpace)
from search_spaces.spec import ArchSpec, BlockSpec, HeadSpec, StemSpec


@runtime_checkable
class SearchSpace(Protocol):
    """What a strategy, a driver and the latency tables may ask of a space.

    Strategies use the index vector (``cardinalities`` ... ``size``); ``latency/`` samples specs
    (``sample``: calibration and validation specs) and prices every block the space can
    contain (``block_contexts``, with ``stem`` and ``head``: ``latency.keys.space_keys``)."""

    name: str
    resolution: int
    num_classes: int
    in_channels: int
    stem: StemSpec
    head: HeadSpec

    @property
    def cardinalities(self) -> tuple[int, ...]: ...
    def decode(self, indices: tuple[int, ...] | list[int]) -> ArchSpec: ...
    def encode(self, spec: ArchSpec) -> tuple[int, ...]: ...
    def canonicalize(self, indices: tuple[int, ...] | list[int]) -> tuple[int, ...]: ...
    def sample_indices(self, rng: np.random.Generator) -> tuple[int, ...]: ...
    def mutate_indices(self, indices: tuple[int, ...], rng: np.random.Generator,
                       max_tries: int = 100) -> tuple[int, ...]: ...
    def size(self) -> int: ...
    def sample(self, rng: np.random.Generator) -> ArchSpec: ...
    def block_contexts(self) -> Iterable[tuple[BlockSpec, int, int]]:
        """Every distinct ``(block, in_channels, input side)`` a spec of the space contains."""


SPACES: dict[str, Callable[..., SearchSpace]] = {
    "mnasnet": MnasNetSpace,
    "mnasnet-small": MnasNetSmallHeadSpace,
    "mnasnet-mbconv": MnasNetMBConvSpace,
    "mnasnet-small-mbconv": MnasNetSmallMBConvSpace,
    "mnasnet-v3small": MnasNetV3SmallSpace,
    "mnasnet-v3small-mbconv": MnasNetV3SmallMBConvSpace,
}
"""name -> factory ``(resolution=, num_classes=, in_channels=)``; a new space is a module
``search_spaces/<name>.py`` and a line here (tests/test_extension_points.py)."""


def make_space(name: str, *, resolution: int = 224, num_classes: int = 1000, in_channels: int = 3) -> SearchSpace:
    """The space ``name`` at the given input shape and class count."""
    if name not in SPACES:
        raise ValueError(f"unknown space {name!r}; expected one of {sorted(SPACES)}")
    return SPACES[name](resolution=resolution, num_classes=num_classes, in_channels=in_channels)
