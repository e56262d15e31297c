"""NetAdapt closed on measured latency: how much is left to cut, read from the measurements.

NetAdapt (Yang et al., 2018, section 3) sizes each step with a latency model and stops when the
model says the target is reached. A per-layer table can misjudge what a *cut* saves, most at
small resolutions where layers are bound by loading their weights (by 2x or more; figures in
``results/netadapt/README.md``). The loop already measures
every kept model end to end; here those measurements steer it:

- the goal in measured units is the caller's own when it has one (``measured_goal_ms``: a
  pipeline knows its budget in the measurement's units), else the target scaled by the start
  model's measured/predicted ratio;
- the *slope* is the measured cut of the last step over its predicted cut (relative to the
  start ratio; 1 when the table is right, clamped to [1/4, 4]); before the first step it is
  unknown, and the first step asks for half of what is left;
- what is left, in table units, is (measured now - goal) / (slope x start ratio).

The loop stops when nothing is left and sizes its next step as NetAdapt does, by this gap. On
the last step (what is left is less than delta, read with the slope or without it) the proposals
are measured end to end and chosen by those measurements
(:func:`netadapt.selection.choose_measured`): a table that prices a cut 8x low (an early
expansion layer at 32x32: 0.003 ms predicted, 0.023 ms measured) would otherwise take a whole
model's 13% in the step meant to close the last 1%. One step's slope is a noisy estimate (a
cut the runtime does not feel clamps it to 1/4 and quadruples the ask), so the last step's
proposals are sized both for the slope's gap and for what is left at the start's ratio alone,
and the measurement chooses among them (a demo run's last step, sized only by a clamped slope,
offered one proposal, which landed at 0.92x its budget). By default (``measure_proposals``
``every``) every step's proposals are measured and chosen so, not only the last: at 32x32 on a
2-core AMD EPYC a table priced a bottleneck cut (channels 96 to 48 in two blocks) at 8.5% of the
model and it measured 0.1%, priced a head cut (576 to 288) at 0.2% and it measured 9%, and a
demo's loop, choosing by the table, took 19 steps to cut 42% (``results/reference/README.md``). Past
the table's own target it also stops when two kept steps in a row measured no faster: there the measurement
has reached what cuts do not remove (a runtime's fixed cost per inference, or a slow moment of
the machine), and steering by it would cut the model down to the granularity floor.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

CLOSE_ON = ("predicted", "measured")
MEASURE_PROPOSALS = ("every", "last")
SLOPE_RANGE = (0.25, 4.0)
FIRST_STEP_SHARE = 0.5
STALL_STEPS = 2
"""Past the table's target, the loop stops when this many kept steps in a row measured no faster."""
LANDING_REACH = 0.06
"""On a last step with a quick measurement at hand, the proposals are measured quickly first and
again by the deciding measurement (spread over seconds) only when one of them reads within this
share over the goal: later readings of one model differ by -4% to +5% under the load injector,
so a proposal read further over cannot land. With steps of 1-5% measured (32x32, AMD EPYC) a
demo's NetAdapt ran 9 of its 12 steps as last steps, each spending 10 s on the deciding spread."""


def may_land(quick_ms: Sequence[float], goal_ms: float) -> bool:
    """Whether a proposal read quickly at ``quick_ms`` could land at or under ``goal_ms`` when
    measured again (within :data:`LANDING_REACH`; NaN readings cannot)."""
    return any(math.isfinite(ms) and ms <= goal_ms * (1.0 + LANDING_REACH) for ms in quick_ms)


def check_close_on(value: str) -> None:
    if value not in CLOSE_ON:
        raise ValueError(f"netadapt.close_on = {value!r} is not allowed; expected one of {CLOSE_ON}")


def check_measure_proposals(value: str) -> None:
    if value not in MEASURE_PROPOSALS:
        raise ValueError(f"netadapt.measure_proposals = {value!r} is not allowed; expected one of {MEASURE_PROPOSALS}")


def measurement_follows(rows: Sequence[dict[str, Any]]) -> bool:
    """Whether the measurement still falls: False only when each of the last :data:`STALL_STEPS`
    kept steps measured no faster than the model before it (True before that many steps or
    without measurements: nothing says otherwise). One step is not enough: a cut the table
    thinks large can save nothing on the runtime (channels 24 to 16 in four blocks, under the
    vector width) while the next cut saves plenty, and stopping there left a pipeline's first
    round at 1.385x its budget."""
    if len(rows) <= STALL_STEPS:
        return True
    values = [row["measured_ms"] for row in rows[-STALL_STEPS - 1:]]
    if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values):
        return True
    return any(after < before for before, after in zip(values, values[1:]))


def step_slope(rows: Sequence[dict[str, Any]]) -> float | None:
    """Measured over predicted cut of the last step, relative to the start model's ratio."""
    if len(rows) < 2:
        return None
    start, before, after = rows[0], rows[-2], rows[-1]
    predicted_cut = before["predicted_ms"] - after["predicted_ms"]
    measured_cut = before["measured_ms"] - after["measured_ms"]
    if not predicted_cut > 0 or not math.isfinite(measured_cut):
        return None
    relative = (measured_cut / predicted_cut) / (start["measured_ms"] / start["predicted_ms"])
    return min(max(relative, SLOPE_RANGE[0]), SLOPE_RANGE[1])


def _positive(*values: Any) -> bool:
    return all(isinstance(v, (int, float)) and math.isfinite(v) and v > 0 for v in values)


def measured_goal(rows: Sequence[dict[str, Any]], target_ms: float, goal_ms: float | None = None) -> float | None:
    """The goal in the measurement's units: ``goal_ms`` when given, else ``target_ms``
    re-anchored on the start model's (first row's) measured/predicted ratio; None without a
    measurement of the start."""
    start = rows[0]
    if not _positive(start["predicted_ms"], start["measured_ms"]):
        return None
    return target_ms * start["measured_ms"] / start["predicted_ms"] if goal_ms is None else goal_ms


def measured_left(rows: Sequence[dict[str, Any]], target_ms: float, goal_ms: float | None = None) -> float | None:
    """What is left to cut in table units at the start model's measured/predicted ratio alone,
    without the last step's slope (<= 0: reached); None without measurements. The rows and
    ``goal_ms`` are as in :func:`measured_gap`."""
    start, now = rows[0], rows[-1]
    goal = measured_goal(rows, target_ms, goal_ms)
    if goal is None or not _positive(now["measured_ms"]):
        return None
    return (now["measured_ms"] - goal) / (start["measured_ms"] / start["predicted_ms"])


def measured_gap(rows: Sequence[dict[str, Any]], target_ms: float, goal_ms: float | None = None) -> float | None:
    """What is left to cut in table units (<= 0: reached) from the kept models' rows
    (``predicted_ms``, ``measured_ms``, the start model first), scaled by the last step's slope;
    None without measurements. ``goal_ms``: see :func:`measured_goal`."""
    left = measured_left(rows, target_ms, goal_ms)
    if left is None or left <= 0:
        return left
    slope = step_slope(rows)
    return left * FIRST_STEP_SHARE if slope is None else left / slope
