"""NetAdapt's start: the search's best trials by reward, measured end to end, scored again with
the search's reward at their measured latency; the best of them whose floor (every width at
NetAdapt's granularity floor, scaled by measured/predicted) lies at or under FLOOR_HEADROOM x the
target."""
import json
from dataclasses import asdict

import pytest

from nas.rewards import RewardConfig
from nas.trial_log import TrialLog, TrialRecord
from netadapt.floor import floor_spec
from netadapt.loop import NetAdaptConfig
from pipeline.netadapt_start import (FLOOR_HEADROOM, MeasuredStart, choose_start, measured_starts, ranked_trials,
                                     search_reward)
from search_spaces.encoding import format_spec, parse_spec
from search_spaces.resolve import resolve_spec
from storage.statefiles import StateFileError

CONFIG = NetAdaptConfig(target_ms=1.0, include_stem=True, include_head=True)


def _spec(name, width):
    return format_spec(resolve_spec(name, width=width, resolution=32, num_classes=10, in_channels=1))


SPECS = [_spec("mobilenetv3-small", 1.0), _spec("mobilenetv3-large", 0.5), _spec("mnasnet-a1", 1.0)]
"""Three architectures whose floors differ (widths alone would share one floor)."""


def _log(folder, specs, rewards, statuses, top1=None):
    """A search's trials.csv (``ok``: the word earlier versions wrote for finished)."""
    log = TrialLog(folder)
    for i, (spec, reward, status) in enumerate(zip(specs, rewards, statuses)):
        accuracy = reward if top1 is None else top1[i]
        log.log.append([{**asdict(TrialRecord(i, f"t{i}", f"p{i}", spec, "", 1.0 + i, accuracy, 0.01, reward,
                                              "finished", 2, 1.0)), "status": status}])


def _specs(rows):
    return [row["spec"] for row in rows]


def test_trials_are_ranked_by_reward_with_the_pick_first(tmp_path):
    _log(tmp_path, [SPECS[1], SPECS[2], SPECS[0], SPECS[1]], [0.2, 0.5, 0.4, 0.1], ["finished", "ok", "finished", "finished"])
    rows = ranked_trials(str(tmp_path), SPECS[0])
    assert _specs(rows) == [SPECS[0], SPECS[2], SPECS[1]]
    assert rows[2]["reward"] == 0.2 and rows[2]["latency_ms"] == 1.0  # a repeated spec keeps its best trial
    assert rows[0] == {"spec": SPECS[0], "top1": 0.4, "top1_stderr": 0.01, "latency_ms": 3.0, "reward": 0.4}
    assert _specs(ranked_trials(str(tmp_path / "nowhere"), SPECS[0])) == [SPECS[0]]
    assert _specs(ranked_trials(None, SPECS[0])) == [SPECS[0]]


def test_pruned_and_failed_trials_are_not_starts(tmp_path):
    _log(tmp_path, SPECS, [0.1, 0.9, 0.8], ["finished", "failed", "pruned"])
    assert _specs(ranked_trials(str(tmp_path), SPECS[0])) == [SPECS[0]]


def _predictor(predicted, floors):
    """A predictor reading each spec as ``predicted[spec]`` and its floor as ``floors[spec]``."""
    table = {s: v for s, v in predicted.items()}
    table.update({format_spec(floor_spec(parse_spec(s), CONFIG.proposal_config())): v for s, v in floors.items()})
    return lambda spec: table[format_spec(spec)]


def _trials(top1):
    return [{"spec": s, "top1": a, "top1_stderr": 0.01, "latency_ms": 1.0, "reward": a} for s, a in zip(SPECS, top1)]


HARD = RewardConfig("hard", 1.25)


def test_starts_are_scored_by_the_searchs_reward_at_their_measured_latency():
    predicted = dict.fromkeys(SPECS, 1.0)
    starts = measured_starts(_trials([0.5, 0.5, 0.5]), [2.5, 1.25, 1.0], 1.0, _predictor(predicted, dict.fromkeys(SPECS, 0.5)),
                             CONFIG, HARD)
    assert [s.measured_ms for s in starts] == [2.5, 1.25, 1.0]
    assert [s.reward for s in starts] == [pytest.approx(0.25), 0.5, 0.5]  # hard: over 1.25 ms scaled by 1.25/latency
    assert choose_start(starts) == 1  # a tie goes to the better by the search's own ranking


def test_a_floor_is_scaled_by_its_models_measured_over_predicted_ratio():
    predicted = dict.fromkeys(SPECS, 1.0)
    starts = measured_starts(_trials([0.5, 0.5, 0.5]), [2.0, 1.0, 1.0], 0.5, _predictor(predicted, dict.fromkeys(SPECS, 0.25)),
                             CONFIG, HARD)
    # the first measured at 2x the budget, its floor predicted at a quarter of the model: 0.5x the budget;
    # the others at 1x, floors at 0.25x (by the table alone every floor would read 0.25 / 0.5 = 0.5x)
    assert [s.floor_share for s in starts] == pytest.approx([0.5, 0.25, 0.25])


def _start(reward, floor_share):
    return MeasuredStart("s", 0.5, 0.01, 1.0, 1.0, floor_share, reward)


def test_the_best_reward_whose_floor_leaves_headroom_is_chosen():
    assert choose_start([_start(0.6, 0.9), _start(0.5, 0.8), _start(0.55, FLOOR_HEADROOM)]) == 2
    assert choose_start([_start(0.4, 0.5), _start(0.5, 0.8)]) == 1


def test_without_a_reachable_start_the_best_by_reward_stays_and_netadapt_says_why():
    assert choose_start([_start(0.4, 0.95), _start(0.5, 0.9), _start(0.3, 0.86)]) == 1


def test_the_reward_is_the_one_the_search_recorded(tmp_path):
    config = {"target_ms": 0.2, "data": "digits", "reward": "hard", "w": None}
    (tmp_path / "manifest.json").write_text(json.dumps({"config": config}))
    assert search_reward(tmp_path) == RewardConfig("hard", 0.2)
    (tmp_path / "manifest.json").write_text(json.dumps({"config": {**config, "reward": "mnasnet", "w": -0.15}}))
    assert search_reward(tmp_path) == RewardConfig("mnasnet", 0.2, -0.15, -0.15)
    (tmp_path / "manifest.json").write_text("{")
    with pytest.raises(StateFileError, match="manifest"):
        search_reward(tmp_path)


def test_the_start_weights_are_sliced_again_for_another_start(tmp_path, monkeypatch):
    from types import SimpleNamespace

    import torch

    from pipeline import supernet_stage

    sliced = []

    class FakeEvaluator:
        @classmethod
        def from_run(cls, *args, **kwargs):
            return cls()

        def subnet_weights(self, spec, template=None):
            sliced.append(format_spec(spec))
            return {"w": torch.full((1,), float(len(sliced)))}

    monkeypatch.setattr(supernet_stage, "SupernetEvaluator", FakeEvaluator)
    monkeypatch.setattr(supernet_stage, "load_dataset", lambda *a, **k: None)
    monkeypatch.setattr(supernet_stage, "uses_supernet", lambda run: True)
    run = SimpleNamespace(path=tmp_path, config=SimpleNamespace(data="digits", space="s", seed=0, threads=1),
                          result=lambda name: {"run_dir": "supernet"})
    for spec in (SPECS[0], SPECS[0], SPECS[1]):
        supernet_stage.supernet_start(run, spec)
    assert sliced == [SPECS[0], SPECS[1]]  # reused for the same start, sliced again for another
    assert (tmp_path / supernet_stage.START_SPEC).read_text().strip() == SPECS[1]
    (tmp_path / supernet_stage.START_SPEC).unlink()  # an earlier version wrote no spec beside them
    supernet_stage.supernet_start(run, SPECS[1])
    assert sliced == [SPECS[0], SPECS[1], SPECS[1]]
