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
from typing import Callable, Iterable, Iterator, Sequence

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
class ShrinkTarget:
    """One width NetAdapt may shrink: its ``kind`` (:data:`KINDS`), the blocks it changes, its
    channels now, and ``rewrite(width)``, the spec with it at ``width``."""

    kind: str
    blocks: tuple[int, ...]
    channels: int
    rewrite: Callable[[int], ArchSpec]


def shrink_targets(spec: ArchSpec, config: ProposalConfig) -> Iterator[ShrinkTarget]:
    """Every shrinkable width of ``spec``: expansions, residual groups, optional stem/head."""
    for index, has_conv in enumerate(expansion_convs(spec)):
        if has_conv:
            yield ShrinkTarget("expansion", (index,), spec.blocks[index].exp_channels,
                               lambda w, i=index: with_widths(spec, {i: {"exp_channels": w}}))
    groups = residual_groups(spec)
    for group in groups:
        yield ShrinkTarget("bottleneck", group, spec.blocks[group[-1]].out_channels,
                           lambda w, g=group: with_widths(spec, {i: {"out_channels": w} for i in g}))
    if config.include_stem and groups[0][0] != STEM:  # a tied stem shrinks with its group
        yield ShrinkTarget("stem", (), spec.stem.out_channels, lambda w: with_widths(spec, {STEM: {"out_channels": w}}))
    if config.include_head:
        yield ShrinkTarget("head", (), spec.head.feature_channels, lambda w: with_widths(spec, {}, feature_channels=w))


def candidate_widths(channels: int, granularity: int, max_cut_fraction: float = 1.0) -> list[int]:
    """Multiples of ``granularity`` below ``channels``, largest first, none below it nor below
    ``(1 - max_cut_fraction) x channels``."""
    top = (channels - 1) // granularity * granularity
    lowest = max(granularity, math.ceil(channels * (1.0 - max_cut_fraction) / granularity - 1e-9) * granularity)
    return list(range(top, lowest - 1, -granularity))


PredictMany = Callable[[Sequence[ArchSpec]], list[float]]
"""Latencies of several specs in one call (a lazy table measures all their missing layers in one pass)."""


@dataclass
class _Search:
    """One target's choice of width: ``options`` are its allowed (width, spec) pairs, largest
    width first; ``found`` the index of the first option predicted to meet the cut and its
    prediction, once known."""

    target: ShrinkTarget
    options: list[tuple[int, ArchSpec]]
    found: tuple[int, float] | None = None

    def proposal(self, index: int, latency_ms: float, meets: bool, baseline_ms: float) -> ShrinkProposal:
        width, new = self.options[index]
        t = self.target
        return ShrinkProposal(t.kind, t.blocks, t.channels, width, new, float(latency_ms), meets, baseline_ms)


def _allowed(spec: ArchSpec, target: ShrinkTarget, widths: Iterable[int]) -> Iterator[tuple[int, ArchSpec]]:
    """``(width, spec)`` for each of ``widths`` (in their order) that ``target`` may take: widths
    at which a 1x1 expansion conv would appear or disappear are left out (module docstring)."""
    structure = expansion_convs(spec)
    for width in widths:
        new = target.rewrite(width)
        if expansion_convs(new) == structure:
            yield width, new


def _options(spec: ArchSpec, target: ShrinkTarget, config: ProposalConfig) -> list[tuple[int, ArchSpec]]:
    """The widths ``target`` may take, largest first, with their specs (:func:`_allowed`)."""
    return list(_allowed(spec, target, candidate_widths(target.channels, config.granularity, config.max_cut_fraction)))


def deepest_cut(spec: ArchSpec, target: ShrinkTarget, config: ProposalConfig) -> ArchSpec | None:
    """``spec`` with ``target`` at the smallest width :func:`_options` allows (the last of its
    options), None when it has none; builds only the specs it must check, smallest first."""
    widths = reversed(candidate_widths(target.channels, config.granularity, config.max_cut_fraction))
    return next((new for _, new in _allowed(spec, target, widths)), None)


def _scan(searches: list[_Search], predict_many: PredictMany, baseline_ms: float, delta_ms: float) -> None:
    """Walk every search's widths from the largest until one is predicted to meet ``delta_ms``,
    all searches together, in chunks that double (1, 2, 4, ... widths): one prediction call per
    chunk, and at most about twice the widths a one-by-one walk would predict."""
    start, size, active = 0, 1, list(searches)
    while active:
        batch = [(s, i) for s in active for i in range(start, min(start + size, len(s.options)))]
        for (search, index), latency_ms in zip(batch, predict_many([s.options[i][1] for s, i in batch])):
            if search.found is None and baseline_ms - float(latency_ms) >= delta_ms:
                search.found = (index, float(latency_ms))
        start, size = start + size, 2 * size
        active = [s for s in active if s.found is None and start < len(s.options)]


def propose_reductions(spec: ArchSpec, predict_ms: Callable[[ArchSpec], float], delta_ms: float,
                       config: ProposalConfig = ProposalConfig(), *,
                       predict_many: PredictMany | None = None) -> list[ShrinkProposal]:
    """NetAdapt steps 1-2 (MobileNetV3 4.2): one proposal per shrinkable width of ``spec``.

    Each takes the smallest reduction predicted to cut ``delta_ms`` (NetAdapt's "choose # of
    filters"), or its deepest allowed cut, flagged, when even that misses. The deepest cuts are
    predicted first, in one call; only a proposal whose deepest cut meets ``delta_ms`` has its
    widths walked to the first that does (on a lazy table each new width predicted is a layer
    measured, and with a large delta most deepest cuts miss it).

    Args:
        predict_ms: latency of a spec (``LatencyPredictor.predict_ms``, a lazily measuring
            predictor, or any toy function).
        delta_ms: the cut each proposal must reach (``config.delta_ms(L0)`` in NetAdapt).
        predict_many: latencies of several specs in one call (``LazyPredictor.predict_many``);
            by default ``predict_ms`` spec by spec.

    Returns:
        Proposals: expansions (block order), residual groups (network order), then the
        stem and the head when enabled. Widths already at the granularity give none; a proposal whose minimum
        width still misses ``delta_ms`` is returned with ``meets_cut=False``.

    Raises:
        ValueError: ``delta_ms`` negative or not finite.
    """
    if isinstance(delta_ms, bool) or not isinstance(delta_ms, (int, float)) or not math.isfinite(delta_ms) or delta_ms < 0:
        raise ValueError(f"delta_ms = {delta_ms!r} is not allowed; expected a finite number >= 0")
    many = predict_many or (lambda specs: [predict_ms(s) for s in specs])
    searches = [s for s in (_Search(t, _options(spec, t, config)) for t in shrink_targets(spec, config)) if s.options]
    baseline_ms, *deepest = (float(v) for v in many([spec] + [s.options[-1][1] for s in searches]))
    reachable = [s for s, ms in zip(searches, deepest) if baseline_ms - ms >= delta_ms]
    _scan(reachable, many, baseline_ms, delta_ms)
    return [s.proposal(*s.found, True, baseline_ms) if s.found else s.proposal(len(s.options) - 1, ms, False, baseline_ms)
            for s, ms in zip(searches, deepest)]


def unique_proposals(proposals: list[ShrinkProposal]) -> list[ShrinkProposal]:
    """``proposals`` without repeats of a spec, first occurrence kept."""
    seen: set[ArchSpec] = set()
    return [p for p in proposals if not (p.spec in seen or seen.add(p.spec))]


def nearest_asks(proposals: list[ShrinkProposal], asks: list[float], limit: int | None) -> list[ShrinkProposal]:
    """At most ``limit`` of ``proposals``, those whose predicted saving is nearest one of
    ``asks`` (in their order among equals); all of them for ``limit`` None."""
    if limit is None or len(proposals) <= limit:
        return proposals
    distance = [min(abs(p.cut_ms - ask) for ask in asks) for p in proposals]
    kept = sorted(sorted(range(len(proposals)), key=distance.__getitem__)[:limit])
    return [proposals[i] for i in kept]


def substantial_savings(proposals: list[ShrinkProposal], share: float = 0.5) -> list[ShrinkProposal]:
    """The proposals predicted to save at least ``share`` of the largest saving among them
    (none when no proposal saves anything)."""
    largest = max((p.cut_ms for p in proposals), default=0.0)
    return [p for p in proposals if p.cut_ms > 0 and p.cut_ms >= share * largest]
