"""Which searched model NetAdapt starts from (MobileNetV3 section 4.2: the search's pick,
refined by NetAdapt).

NetAdapt only shrinks widths, so the lowest latency it can reach from a model is that model with
every width at the granularity floor. Where a platform's cost is mostly per operator (torch eager
on 32x32 inputs), the search's best pick can have its floor barely under the target: with seed 1
on torch eager the pick's floor was predicted at 0.91x the target, the loop stalled at 1.01x (no
narrower layer predicted faster) and the run failed, while the next picks by reward had floors at
0.87x and 0.85x. So the start is the best trial by reward whose floor lies at or under
:data:`FLOOR_HEADROOM` x the target; the search's pick when none does (NetAdapt then says why it
cannot reach the target). In the same run the picks' floors were 0.39x the target on ONNX
Runtime float (1 thread) and 0.80x on int8: the pick.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from netadapt.floor import floor_spec
from netadapt.loop import NetAdaptConfig
from nas.trial_log import TRIALS_FILE, TrialLog
from search_spaces.encoding import parse_spec
from search_spaces.spec import ArchSpec
from storage.status import Status

FLOOR_HEADROOM = 0.85
"""A start model's floor (every width at NetAdapt's granularity floor) must be predicted at or
under this share of the target: the loop's greedy cuts stop short of the floor, and the first
round's target in the table may be below the platform's own (anchored on the start's measurement)."""


def ranked_specs(search_dir: str | None, best_spec: str) -> list[str]:
    """The search's finished trials' specs by reward, best first, the search's pick leading
    (ties and a missing log keep it first)."""
    if search_dir is None or not (Path(search_dir) / TRIALS_FILE).is_file():
        return [best_spec]
    trials = TrialLog(search_dir).frame()  # earlier versions' status words read as today's
    finished = trials[trials["status"] == Status.FINISHED.value].sort_values("reward", ascending=False, kind="stable")
    return [best_spec, *(s for s in dict.fromkeys(finished["spec"].astype(str)) if s != best_spec)]


def start_spec(best_spec: str, ranked: list[str], target_ms: float, predict_ms: Callable[[ArchSpec], float],
               config: NetAdaptConfig) -> tuple[str, list[float]]:
    """The first of ``ranked`` whose floor is predicted at or under :data:`FLOOR_HEADROOM` x
    ``target_ms`` (``best_spec`` when none), and the floors looked at, as shares of the target."""
    proposals, shares = config.proposal_config(), []
    for spec in ranked:
        shares.append(float(predict_ms(floor_spec(parse_spec(spec), proposals))) / target_ms)
        if shares[-1] <= FLOOR_HEADROOM:
            return spec, shares
    return best_spec, shares
