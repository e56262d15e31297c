"""Which searched model NetAdapt starts from (MobileNetV3 section 4.2: the search's pick,
refined by NetAdapt), chosen on measured latency.

The search prices its candidates with the latency table, and at small inputs a table's price of a
whole model can be far off, differently for each model: in five ``make demo`` runs on a 2-core AMD
EPYC the twelve best trials by reward measured 0.92x to 1.98x their table price, and the picks,
priced at 1.2-1.3x the budget, measured 1.46x-2.11x it, so NetAdapt needed 11-28 iterations
(``results/reference/README.md``). So before NetAdapt the best :data:`MEASURED_STARTS` trials by
the search's reward are timed end to end, paired with the budget's model, and scored again with
the search's own reward at their measured latency (MnasNet section 3 rewards real latency); the
start is the best of them by that reward. The measurements are kept (``start_choice.json``), and
the chosen one is the start check NetAdapt's first round is anchored on.

NetAdapt only shrinks widths, so the lowest latency it can reach from a model is that model with
every width at the granularity floor. Where a platform's cost is mostly per operator (torch eager
on 32x32 inputs), the search's best pick can have its floor barely under the target: with seed 1
on torch eager the pick's floor was predicted at 0.91x the target, the loop stalled at 1.01x (no
narrower layer predicted faster) and the run failed, while the next picks by reward had floors at
0.87x and 0.85x. So a start's floor must lie at or under :data:`FLOOR_HEADROOM` x the target (a
measured start's floor is its table prediction scaled by the start's measured/predicted ratio);
when none does, the best by reward (NetAdapt then says why it cannot reach the target). In the
same run the picks' floors were 0.39x the target on ONNX Runtime float (1 thread) and 0.80x on
int8.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from netadapt.floor import floor_spec
from netadapt.loop import NetAdaptConfig
from nas.rewards import RewardConfig
from nas.search import SearchConfig
from nas.trial_log import TRIALS_FILE, TrialLog
from search_spaces.encoding import parse_spec
from search_spaces.spec import ArchSpec
from storage.runfolder import MANIFEST
from storage.statefiles import read_json
from storage.status import Status

FLOOR_HEADROOM = 0.85
"""A start model's floor (every width at NetAdapt's granularity floor) must be predicted at or
under this share of the target: the loop's greedy cuts stop short of the floor, and the first
round's target in the table may be below the platform's own (anchored on the start's measurement)."""
MEASURED_STARTS = 12
"""The search's best trials by reward that are measured end to end before NetAdapt starts (about
a second each at 32x32 on 2 cores: 8-14 s for twelve in ``make demo``)."""


def ranked_trials(search_dir: str | None, best_spec: str) -> list[dict[str, Any]]:
    """The search's finished trials by reward, best first, one row per spec (``spec``, ``top1``,
    ``top1_stderr``, ``latency_ms`` as the search priced it, ``reward``), the search's pick
    leading (ties and a missing log keep it first; without a log it is the only row, with NaN
    figures)."""
    pick = {"spec": best_spec, "top1": math.nan, "top1_stderr": math.nan, "latency_ms": math.nan, "reward": math.nan}
    if search_dir is None or not (Path(search_dir) / TRIALS_FILE).is_file():
        return [pick]
    trials = TrialLog(search_dir).frame()  # earlier versions' status words read as today's
    finished = trials[trials["status"] == Status.FINISHED.value].sort_values("reward", ascending=False, kind="stable")
    rows: dict[str, dict[str, Any]] = {}
    for row in finished.to_dict("records"):  # best first: a repeated spec keeps its best row
        rows.setdefault(str(row["spec"]), {name: str(row[name]) if name == "spec" else float(row[name]) for name in pick})
    return [rows.pop(best_spec, pick), *rows.values()]


def search_reward(search_dir: str | Path) -> RewardConfig:
    """The reward the search in ``search_dir`` scored its trials with (its recorded settings)."""
    manifest = read_json(Path(search_dir) / MANIFEST, fields={"config": dict}, what="search manifest")
    return SearchConfig.from_dict(manifest["config"], what=f"search config in {search_dir}").reward_config()


@dataclass(frozen=True)
class MeasuredStart:
    """One searched model measured as a possible start. Latencies are in the table's units:
    ``measured_ms`` is its measured ratio to the budget times the table's target; ``floor_share``
    its floor's prediction scaled by measured/predicted, as a share of the target; ``reward`` the
    search's reward at ``measured_ms``."""

    spec: str
    top1: float
    top1_stderr: float
    predicted_ms: float
    measured_ms: float
    floor_share: float
    reward: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def measured_starts(trials: Sequence[dict[str, Any]], ratios: Sequence[float], target_ms: float,
                    predict_ms: Callable[[ArchSpec], float], config: NetAdaptConfig,
                    reward: RewardConfig) -> list[MeasuredStart]:
    """``trials`` (rows of :func:`ranked_trials`) with their measured ratios to the budget."""
    proposals, starts = config.proposal_config(), []
    for trial, ratio in zip(trials, ratios):
        spec = parse_spec(trial["spec"])
        predicted = float(predict_ms(spec))
        measured = float(ratio) * target_ms
        floor = float(predict_ms(floor_spec(spec, proposals))) * measured / predicted
        starts.append(MeasuredStart(trial["spec"], trial["top1"], trial["top1_stderr"], predicted, measured,
                                    floor / target_ms, float(reward(trial["top1"], measured))))
    return starts


def choose_start(starts: Sequence[MeasuredStart]) -> int:
    """The index of the best of ``starts`` by reward at measured latency among those whose floor
    is at or under :data:`FLOOR_HEADROOM` x the target; of all of them when none is (ties: the
    earlier, that is the better by the search's own ranking)."""
    reachable = [i for i, s in enumerate(starts) if s.floor_share <= FLOOR_HEADROOM] or list(range(len(starts)))
    return max(reachable, key=lambda i: (starts[i].reward, -i))
