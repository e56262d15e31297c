"""Growing a searched model that measures under its budget before NetAdapt (MorphNet's uniform
expansion, Gordon et al. 2018, and EfficientNet's compound scaling of depth and width, Tan and Le
2019, section 3.3, applied to MobileNetV3 section 4.2's pipeline).

NetAdapt only narrows, so a start that measures under the budget ends under it, leaving latency
the user paid for unused: with MnasNet's soft reward (``(LAT/TARGET)^w``, w < 0) a model a little
under the target scores a little better than one at it, and in five ``make demo`` runs on the
MobileNetV3-Small stages three starts measured 0.87x-0.95x the budget and were kept as they were.
Here such a start is grown instead: every block's widths times one multiplier
(:func:`search_spaces.rewrite.widened`, stem and head as they are), the least multiplier whose
estimated latency reaches :data:`GROW_AIM` x the budget, estimated as the start's measured ratio
times the table's ratio of the two predictions (the table only has to say how much growing
costs, relative to a measured anchor); where no width brings it into the band (at 32x32 a
model's latency is mostly its depth), one block deeper first, in the stage where a block costs
least (its ``layers`` decision), block by block, each depth then widened by the least multiplier.
The grown model is measured end to end; still
under the band, it is grown again from the searched model, anchored on that measurement, at
most :data:`MAX_GROWTHS` times. NetAdapt then narrows it into the band as it does any start
over it.

With the supernet evaluator every width stays within what the supernet holds at the block's
position (``ceilings``) and depth within its stages, so the grown model inherits its weights like
any sub-network.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable, Sequence

from search_spaces.encoding import format_spec
from search_spaces.rewrite import widened
from search_spaces.spec import ArchSpec

GROW_BELOW = 0.95
"""A start whose measurement may lie under this share of the budget (the band's lower edge)
is grown: :func:`short_of_band`."""
GROW_AIM = 1.03
"""Where growing aims, as a share of the budget: a little over it, since NetAdapt can narrow a
model into the band but never widen one that lands short."""
MAX_GROWTHS = 3
"""Growing attempts at most (each one end-to-end measurement, about a second at 32x32)."""
MULTIPLIERS = tuple(round(1.0 + 0.05 * i, 2) for i in range(0, 41))
"""The width multipliers tried, 1.0 to 3.0: widths round to multiples of 8, so finer steps repeat specs."""
MAX_BLOCKS_ADDED = 10
"""Blocks added at most, one at a time, while no width brings the estimate into the band."""


@dataclass(frozen=True)
class Growth:
    """One growing of the searched model: ``template`` (the searched model with ``deeper_by``
    blocks added, a model of the space) widened by ``multiplier`` is ``spec``;
    ``estimated_ratio`` to the budget before measuring, ``ratio`` (with ``ratio_low``/``ratio_high``) once measured."""

    spec: str
    template: str
    deeper_by: int
    multiplier: float
    predicted_ms: float
    estimated_ratio: float
    ratio: float
    ratio_low: float
    ratio_high: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


Plan = tuple[int, float, ArchSpec, ArchSpec, float]
"""``(blocks added, multiplier, template, spec, estimated ratio)``."""


def depth_ladder(searched: ArchSpec, predict_ms: Callable[[ArchSpec], float],
                 deeper_options: Callable[[ArchSpec], list[ArchSpec]]) -> list[ArchSpec]:
    """``searched``, then one block deeper at a time, each step in the stage where the table
    prices the added block least, up to :data:`MAX_BLOCKS_ADDED` or as deep as the space goes."""
    ladder = [searched]
    while len(ladder) <= MAX_BLOCKS_ADDED:
        options = [spec for spec in deeper_options(ladder[-1]) if spec != ladder[-1]]
        if not options:
            break
        ladder.append(min(options, key=predict_ms))
    return ladder


def plan_growth(searched: ArchSpec, anchor: ArchSpec, anchor_ratio: float, predict_ms: Callable[[ArchSpec], float],
                deeper_options: Callable[[ArchSpec], list[ArchSpec]],
                ceilings_of: Callable[[ArchSpec], Sequence[tuple[int, int]] | None],
                after: tuple[int, float] = (0, 1.0)) -> Plan | None:
    """The first growth past ``after`` (``(blocks added, multiplier)``: down the
    :func:`depth_ladder`, then by multiplier) estimated at or over :data:`GROW_AIM` x the budget;
    a depth whose widest is estimated in the band (at or over :data:`GROW_BELOW`) ends the
    search with it rather than going a block deeper (a block is a coarse step at small inputs);
    else the largest. None when nothing grows past the anchor."""
    largest = None
    for added, template in enumerate(depth_ladder(searched, predict_ms, deeper_options)):
        if added < after[0]:
            continue
        plan = plan_widening(template, anchor, anchor_ratio, predict_ms, ceilings_of(template),
                             after[1] if added == after[0] else 0.0)
        if plan is None:
            continue
        largest = (added, plan[0], template, plan[1], plan[2])
        if plan[2] >= GROW_BELOW:
            return largest
    return largest


def plan_widening(template: ArchSpec, anchor: ArchSpec, anchor_ratio: float, predict_ms: Callable[[ArchSpec], float],
                  ceilings: Sequence[tuple[int, int]] | None, after: float = 1.0) -> tuple[float, ArchSpec, float] | None:
    """The least multiplier above ``after`` whose widening of ``template`` is estimated at or
    over :data:`GROW_AIM` x the budget (estimate: ``anchor_ratio`` times the table's prediction
    over the anchor's), else the widest; ``(multiplier, spec, estimated ratio)``, or None when
    even the widest is the anchor (at the ceilings). Widths never narrow as the multiplier
    grows, so the estimate rises with it and a bisection finds the least (a handful of
    predictions, each new layer of which a lazy table measures)."""
    anchor_ms = float(predict_ms(anchor))
    options = [m for m in MULTIPLIERS if m > after]
    if not options:
        return None

    def planned(index: int) -> tuple[float, ArchSpec, float]:
        spec = widened(template, options[index], ceilings)
        return options[index], spec, anchor_ratio * float(predict_ms(spec)) / anchor_ms

    found = planned(len(options) - 1)
    if found[2] < GROW_AIM:
        return None if found[1] == anchor else found
    low, high = 0, len(options) - 1
    while low < high:
        middle = (low + high) // 2
        plan = planned(middle)
        if plan[2] >= GROW_AIM:
            high, found = middle, plan
        else:
            low = middle + 1
    return found


def grow(searched: ArchSpec, start: dict[str, float], predict_ms: Callable[[ArchSpec], float],
         measure: Callable[[ArchSpec], dict[str, float]], deeper_options: Callable[[ArchSpec], list[ArchSpec]],
         ceilings_of: Callable[[ArchSpec], Sequence[tuple[int, int]] | None]) -> list[Growth]:
    """Grow ``searched``, whose measured check is ``start``, while the last measurement may lie
    under the band (see :func:`short_of_band`; the module docstring); every growth measured, in
    order (none when the start is not short). ``deeper_options(spec)``: the space's models one
    block deeper than ``spec`` (one per stage that can take one); ``ceilings_of(template)``: the
    widest ``(out, exp)`` per block, None for no limit; ``measure`` returns a check with
    ``ratio``, ``ratio_low``, ``ratio_high`` (``pipeline.netadapt_rounds.measured_check``)."""
    growths: list[Growth] = []
    anchor, after, check = searched, (0, 1.0), start
    while short_of_band(check) and len(growths) < MAX_GROWTHS:
        plan = plan_growth(searched, anchor, float(check["ratio"]), predict_ms, deeper_options, ceilings_of, after)
        if plan is None:
            break
        levels, multiplier, template, anchor, estimate = plan
        after = (levels, multiplier)
        check = measure(anchor)
        ratio = float(check["ratio"])
        growths.append(Growth(format_spec(anchor), format_spec(template), levels, multiplier, float(predict_ms(anchor)),
                              estimate, ratio, float(check.get("ratio_low", ratio)), float(check.get("ratio_high", ratio))))
    return growths


def short_of_band(check: dict[str, float]) -> bool:
    """Whether a measured check may lie under the band: its interval's lower end (its ratio
    when it has none) under :data:`GROW_BELOW`. A start read at 0.950x [0.934, 0.962] in a demo
    run was not grown under a rule on the ratio alone, and its round check read 0.936x."""
    return float(check.get("ratio_low", check["ratio"])) < GROW_BELOW
