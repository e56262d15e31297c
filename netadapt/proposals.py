"""NetAdapt steps 1-2: per-layer shrink proposals sized by a latency predictor.

MobileNetV3 section 4.2: each proposal cuts latency by at least
``delta = 0.01 x L0`` and is either (a) a smaller expansion layer of one block or (b) a
smaller bottleneck width shared by all blocks of one residual group, so every residual
stays valid (a block that no residual ties is a group of its own: its output width is a
bottleneck too). The stem and the head's feature conv are optional extra proposals. As in
NetAdapt (Yang et al., 2018, Algorithm 1, "choose # of filters"), each proposal takes the
smallest channel reduction, in steps of ``granularity``, whose predicted cut meets delta.

Widths are multiples of ``granularity`` (hardware-friendly, as make_divisible keeps them)
and never below it. One proposal removes at most ``max_cut_fraction`` of a width's channels:
with a large delta (a short budget asks 15% of L0 per iteration) the only proposals meeting
it can be layers cut to their minimum width, which a short fine-tune cannot recover (a head
cut from 576 to 8 channels put a trained model at chance); when none meets delta within the
bound, the loop lets every proposal that saves anything compete, as it does near the floor. A width at which a 1x1 expansion conv would appear or disappear (an
expansion shrunk to exactly the block's input width, or an input shrunk to exactly a
block's expansion width) is skipped: removing an expansion conv changes the function class,
so no subset of the old weights carries over (see :mod:`netadapt.transfer`), and NetAdapt's
proposals only remove filters. The proposal then takes the next smaller width.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterator

from search_spaces.rewrite import STEM, expansion_convs, residual_groups, with_widths
from search_spaces.spec import ArchSpec
from storage.settings import check_settings, setting

KINDS = ("expansion", "bottleneck", "stem", "head")


@dataclass(frozen=True)
class ProposalConfig:
    """Proposal settings (MobileNetV3 4.2: delta = 1% of the initial latency L0)."""

    delta_fraction: float = setting(0.01, kind=float, low=0, high=1, low_open=True, high_open=True)
    granularity: int = setting(8, low=1)
    max_cut_fraction: float = setting(0.5, kind=float, low=0, high=1, low_open=True)
    include_stem: bool = False
    include_head: bool = False

    def __post_init__(self) -> None:
        check_settings(self, "proposal.{name}")
        for name in ("include_stem", "include_head"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"proposal.{name} = {getattr(self, name)!r} is not allowed; expected True or False")

    def delta_ms(self, initial_latency_ms: float) -> float:
        """The per-step latency cut ``delta_fraction x L0``."""
        return self.delta_fraction * initial_latency_ms


@dataclass(frozen=True)
class ShrinkProposal:
    """One shrunk network. ``blocks`` lists the changed block indices as
    :func:`search_spaces.rewrite.residual_groups` gives them (with ``STEM`` = -1 when the
    stem is tied to the group); it is empty for a stem or head proposal."""

    kind: str
    blocks: tuple[int, ...]
    channels_before: int
    channels_after: int
    spec: ArchSpec
    predicted_latency_ms: float
    meets_cut: bool
    baseline_latency_ms: float = math.nan

    @property
    def cut_ms(self) -> float:
        """Predicted latency saved against the spec the proposal was made from."""
        return self.baseline_latency_ms - self.predicted_latency_ms

    def label(self) -> str:
        """E.g. ``"expansion b3 240->200"``, ``"bottleneck b3,b4,b5 40->32"``, ``"stem 16->8"``."""
        where = ",".join("stem" if i == STEM else f"b{i}" for i in self.blocks)
        return " ".join(p for p in (self.kind, where, f"{self.channels_before}->{self.channels_after}") if p)


@dataclass(frozen=True)
class _Target:
    kind: str
    blocks: tuple[int, ...]
    channels: int
    rewrite: Callable[[int], ArchSpec]


def _targets(spec: ArchSpec, config: ProposalConfig) -> Iterator[_Target]:
    """Every shrinkable width of ``spec``: expansions, residual groups, optional stem/head."""
    for index, has_conv in enumerate(expansion_convs(spec)):
        if has_conv:
            yield _Target("expansion", (index,), spec.blocks[index].exp_channels,
                          lambda w, i=index: with_widths(spec, {i: {"exp_channels": w}}))
    groups = residual_groups(spec)
    for group in groups:
        yield _Target("bottleneck", group, spec.blocks[group[-1]].out_channels,
                      lambda w, g=group: with_widths(spec, {i: {"out_channels": w} for i in g}))
    if config.include_stem and groups[0][0] != STEM:  # a tied stem shrinks with its group
        yield _Target("stem", (), spec.stem.out_channels, lambda w: with_widths(spec, {STEM: {"out_channels": w}}))
    if config.include_head:
        yield _Target("head", (), spec.head.feature_channels, lambda w: with_widths(spec, {}, feature_channels=w))


def candidate_widths(channels: int, granularity: int, max_cut_fraction: float = 1.0) -> list[int]:
    """Multiples of ``granularity`` below ``channels``, largest first, none below it nor below
    ``(1 - max_cut_fraction) x channels``."""
    top = (channels - 1) // granularity * granularity
    lowest = max(granularity, math.ceil(channels * (1.0 - max_cut_fraction) / granularity - 1e-9) * granularity)
    return list(range(top, lowest - 1, -granularity))


def _size(spec: ArchSpec, target: _Target, predict_ms: Callable[[ArchSpec], float], baseline_ms: float,
          delta_ms: float, config: ProposalConfig) -> ShrinkProposal | None:
    """The smallest reduction of ``target`` predicted to cut ``delta_ms`` (NetAdapt's
    "choose # of filters"); the smallest allowed width, flagged, when none does."""
    structure = expansion_convs(spec)
    found = None
    for width in candidate_widths(target.channels, config.granularity, config.max_cut_fraction):
        new = target.rewrite(width)
        if expansion_convs(new) != structure:
            continue
        latency_ms = float(predict_ms(new))
        meets = baseline_ms - latency_ms >= delta_ms
        found = ShrinkProposal(target.kind, target.blocks, target.channels, width, new, latency_ms, meets, baseline_ms)
        if meets:
            break
    return found


def propose_reductions(spec: ArchSpec, predict_ms: Callable[[ArchSpec], float], delta_ms: float,
                       config: ProposalConfig = ProposalConfig()) -> list[ShrinkProposal]:
    """NetAdapt steps 1-2 (MobileNetV3 4.2): one proposal per shrinkable width of ``spec``.

    Args:
        predict_ms: latency of a spec (``LatencyPredictor.predict_ms``, a lazily measuring
            predictor, or any toy function).
        delta_ms: the cut each proposal must reach (``config.delta_ms(L0)`` in NetAdapt).

    Returns:
        Proposals: expansions (block order), residual groups (network order), then the
        stem and the head when enabled. Widths already at the granularity give none; a proposal whose minimum
        width still misses ``delta_ms`` is returned with ``meets_cut=False``.

    Raises:
        ValueError: ``delta_ms`` negative or not finite.
    """
    if isinstance(delta_ms, bool) or not isinstance(delta_ms, (int, float)) or not math.isfinite(delta_ms) or delta_ms < 0:
        raise ValueError(f"delta_ms = {delta_ms!r} is not allowed; expected a finite number >= 0")
    baseline_ms = float(predict_ms(spec))
    proposals = []
    for target in _targets(spec, config):
        proposal = _size(spec, target, predict_ms, baseline_ms, delta_ms, config)
        if proposal is not None:
            proposals.append(proposal)
    return proposals
