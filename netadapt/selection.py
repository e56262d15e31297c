"""Which proposal NetAdapt keeps (MobileNetV3 section 4.2; NetAdapt, Yang et al. 2018, step 4).

MobileNetV3 keeps the proposal with the largest Δaccuracy / |Δlatency|: accuracy given up per
millisecond saved, measured against the model the iteration started from. The original
NetAdapt kept the most accurate proposal. Both are pure functions of the evaluated proposals.

A short fine-tune measures a proposal's accuracy with a standard error (a binomial one on the
validation split: about 1 point at the demo's 1,500 images), and the ratio divides that noise by
the saving: of proposals whose accuracy moved by less than the noise, the one saving least would
score largest in either direction, and the loop crept down in cuts of 1-3% (17-28 iterations in
``make demo`` runs). So an accuracy change within ``tolerance`` (NetAdapt's setting
``accuracy_tolerance`` standard errors of the current model's top-1) counts as none, and changes
beyond it count by what exceeds it: proposals no better and no worse than noise tie at zero, and
ties go to the larger cut (:func:`score`; and :func:`choose_measured` on a step chosen by
measurement where no proposal lands).

On the last step, which asks only for what is left to the target, a cut beyond the ask is worth
nothing: ``credit_ms`` caps the saving the ratio divides by. Uncapped, a proposal that removes
more than asked (a coarse channel step) loses accuracy over a larger saving, scores better
whenever accuracy falls, and the loop lands well under its target (pipeline runs ended at
0.94x-0.95x a goal of 0.985x).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

SELECTIONS = ("ratio", "accuracy")
"""``ratio``: max Δacc / |Δlat| (MobileNetV3); ``accuracy``: max accuracy (NetAdapt)."""


@dataclass(frozen=True)
class Scored:
    """One evaluated proposal: its index in the iteration, predicted latency and validation top-1."""

    index: int
    predicted_ms: float
    top1: float


def check_selection(select: str) -> None:
    if select not in SELECTIONS:
        raise ValueError(f"select = {select!r} is not allowed; expected one of {SELECTIONS}")


def score(top1: float, predicted_ms: float, *, ref_top1: float, ref_ms: float, select: str,
          credit_ms: float | None = None, tolerance: float = 0.0) -> float:
    """The selection score of a proposal; NaN for a diverged one (never chosen).

    ``ratio``: (top1 - ref_top1) / |predicted_ms - ref_ms| with the iteration's starting model
    as reference, the accuracy change shrunk towards zero by ``tolerance`` (module docstring; an
    unchanged latency counts as a saving of 1e-9 ms; a saving above ``credit_ms``, when given,
    counts as ``credit_ms``); ``accuracy``: top1.
    """
    check_selection(select)
    if not math.isfinite(top1):
        return math.nan
    if select == "accuracy":
        return float(top1)
    saved_ms = abs(ref_ms - predicted_ms)
    if credit_ms is not None:
        saved_ms = min(saved_ms, credit_ms)
    saved_ms = max(saved_ms, 1e-9)
    return float(beyond_noise(top1 - ref_top1, tolerance) / saved_ms)


def beyond_noise(change: float, tolerance: float) -> float:
    """An accuracy change shrunk towards zero by ``tolerance``: none within it, the excess beyond."""
    return math.copysign(max(abs(change) - tolerance, 0.0), change)


def choose(candidates: Sequence[Scored], *, ref_top1: float, ref_ms: float, select: str,
           credit_ms: float | None = None, tolerance: float = 0.0) -> tuple[int | None, list[float]]:
    """The index (into ``candidates``) of the best proposal and every score (``credit_ms`` and
    ``tolerance``: see :func:`score`).

    A proposal not predicted faster than ``ref_ms`` is never chosen. Ties go to the larger
    latency cut (with ``credit_ms``, the last step's, to the smaller one), then to the earlier
    proposal, so the choice is deterministic. Returns None
    when no proposal qualifies (all diverged or none is faster).
    """
    scores = [score(c.top1, c.predicted_ms, ref_top1=ref_top1, ref_ms=ref_ms, select=select, credit_ms=credit_ms,
                    tolerance=tolerance) for c in candidates]
    best, best_key = None, None
    for position, (candidate, value) in enumerate(zip(candidates, scores)):
        if not math.isfinite(value) or not candidate.predicted_ms < ref_ms:
            continue
        cut = -candidate.predicted_ms if credit_ms is None else candidate.predicted_ms
        key = (value, cut, -position)
        if best_key is None or key > best_key:
            best, best_key = position, key
    return best, scores


LANDING_SHARE = 0.965
"""On the last step a proposal lands when measured in [LANDING_SHARE x goal, goal]: with the
pipeline's goal of 0.985 x the budget, the band [0.95, 1.00] x the budget's lower part."""
AIM_SHARE = 0.99
"""Of the landing proposals no less accurate than noise, the last step keeps the one measured
nearest AIM_SHARE x goal: with the pipeline's goal, 0.975 x the budget, the middle of the band."""


def choose_measured(candidates: Sequence[Scored], measured_ms: Sequence[float], *, goal_ms: float, ref_top1: float,
                    ref_ms: float, tolerance: float = 0.0,
                    ratio_tolerance: float = 0.0) -> tuple[int | None, list[float]]:
    """NetAdapt's last step on measured latency (``measured_ms`` of each candidate, ``ref_ms``
    the current model's, ``goal_ms`` the goal, all in one measurement's units).

    Of the proposals that land (measured in [:data:`LANDING_SHARE` x goal, goal]), the most
    accurate (the original NetAdapt's rule among proposals that meet the constraint), and of
    those within ``tolerance`` of it (the top-1's standard error: no better than noise) the one
    measured nearest :data:`AIM_SHARE` x goal (the middle of the pipeline's band): a later
    measurement of the same model reads it a few percent off either way (-4% to +5% under the
    load injector), and from the middle either way stays in the band longest. (Taking the
    slowest put three of ten benchmark runs at 0.980-0.984 of the budget by this reading and over
    it by the next, one of them with landing proposals at 0.952-0.960 no less accurate; taking
    the zone's middle, 0.9675, put two of seven at 0.958-0.959 and under the band by the next.)
    When none lands, the
    best Δaccuracy / |Δmeasured| among those still over the goal and measured faster than the
    current model, the accuracy change shrunk by ``ratio_tolerance`` as in :func:`score` (ties: the
    one measured fastest; the loop goes on); when every one overshoots, the one measured slowest.
    Returns the index (None when none is measured faster than ``ref_ms``) and every score
    (Δaccuracy / |Δmeasured|; NaN for diverged, unmeasured or slower ones)."""
    scores: list[float] = []
    usable: list[int] = []
    for position, (candidate, latency) in enumerate(zip(candidates, measured_ms)):
        ok = math.isfinite(candidate.top1) and math.isfinite(latency) and 0 < latency < ref_ms
        scores.append(beyond_noise(candidate.top1 - ref_top1, ratio_tolerance) / (ref_ms - latency) if ok else math.nan)
        if ok:
            usable.append(position)
    landing = [i for i in usable if LANDING_SHARE * goal_ms <= measured_ms[i] <= goal_ms]
    over = [i for i in usable if measured_ms[i] > goal_ms]
    if landing:
        best_top1 = max(candidates[i].top1 for i in landing)
        close = [i for i in landing if candidates[i].top1 >= best_top1 - tolerance]
        centre = AIM_SHARE * goal_ms
        return min(close, key=lambda i: (abs(measured_ms[i] - centre), -candidates[i].top1, i)), scores
    if over:
        return max(over, key=lambda i: (scores[i], -measured_ms[i], -i)), scores
    if usable:
        return max(usable, key=lambda i: (measured_ms[i], -i)), scores
    return None, scores


def proposal_seed(seed: int, iteration: int, index: int) -> int:
    """An independent seed for proposal ``index`` of ``iteration``: the same in any order of
    evaluation (sequential or Ray) and after a resume."""
    state = np.random.SeedSequence([seed, 0x4E41, iteration, index]).generate_state(2, dtype=np.uint32)
    return (int(state[0]) << 31 ^ int(state[1])) % (2**63 - 1)
