"""Growing a searched model that measures under its budget before NetAdapt (MorphNet's uniform
expansion, Gordon et al. 2018, applied to MobileNetV3 section 4.2's pipeline).

NetAdapt only narrows, so a start that measures under the budget ends under it, leaving latency
the user paid for unused: with MnasNet's soft reward (``(LAT/TARGET)^w``, w < 0) a model a little
under the target scores a little better than one at it, and in five ``make demo`` runs on the
MobileNetV3-Small stages three starts measured 0.87x-0.95x the budget and were kept as they were.
Here such a start is widened instead: every block's widths times one multiplier
(:func:`search_spaces.rewrite.widened`, stem and head as they are), the least multiplier whose
estimated latency reaches :data:`GROW_AIM` x the budget, estimated as the start's measured ratio
times the table's ratio of the two predictions (the table only has to say how much widening
costs, relative to a measured anchor). The widened model is measured end to end; still under
the band, it is widened again from the searched model, anchored on that measurement, at most
:data:`MAX_GROWTHS` times. NetAdapt then narrows it into the band as it does any start over it.

With the supernet evaluator every width stays within what the supernet holds at the block's
position (``ceilings``), so the grown model inherits its weights like any sub-network.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable, Sequence

from search_spaces.encoding import format_spec
from search_spaces.rewrite import widened
from search_spaces.spec import ArchSpec

GROW_BELOW = 0.95
"""A start measured under this share of the budget (the band's lower edge) is widened."""
GROW_AIM = 1.03
"""Where widening aims, as a share of the budget: a little over it, since NetAdapt can narrow a
model into the band but never widen one that lands short."""
MAX_GROWTHS = 3
"""Widening attempts at most (each one end-to-end measurement, about a second at 32x32)."""
MULTIPLIERS = tuple(round(1.0 + 0.05 * i, 2) for i in range(1, 41))
"""The multipliers tried, 1.05 to 3.0: widths round to multiples of 8, so finer steps repeat specs."""


@dataclass(frozen=True)
class Growth:
    """One widening of the searched model: ``estimated_ratio`` to the budget before measuring,
    ``ratio`` (with ``ratio_low``/``ratio_high``) once measured."""

    spec: str
    multiplier: float
    predicted_ms: float
    estimated_ratio: float
    ratio: float
    ratio_low: float
    ratio_high: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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


def grow(template: ArchSpec, ratio: float, predict_ms: Callable[[ArchSpec], float],
         measure: Callable[[ArchSpec], dict[str, float]],
         ceilings: Sequence[tuple[int, int]] | None) -> list[Growth]:
    """Widen ``template``, measured at ``ratio`` of the budget, until a widening measures at or
    over :data:`GROW_BELOW` (see the module docstring); every widening measured, in order (none
    when ``ratio`` is already there). ``measure`` returns a check with ``ratio``,
    ``ratio_low``, ``ratio_high`` (``pipeline.netadapt_rounds.measured_check``)."""
    growths: list[Growth] = []
    anchor, multiplier = template, 1.0
    while ratio < GROW_BELOW and len(growths) < MAX_GROWTHS:
        plan = plan_widening(template, anchor, ratio, predict_ms, ceilings, after=multiplier)
        if plan is None:
            break
        multiplier, anchor, estimate = plan
        check = measure(anchor)
        ratio = float(check["ratio"])
        growths.append(Growth(format_spec(anchor), multiplier, float(predict_ms(anchor)), estimate, ratio,
                              float(check.get("ratio_low", ratio)), float(check.get("ratio_high", ratio))))
    return growths
