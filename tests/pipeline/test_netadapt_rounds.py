"""The NetAdapt stage closed on measured latency: the first round aims at the start model's
prediction scaled by AIM over its measured ratio to the budget, further rounds run while the final
model measures over budget, each from the previous round's model and weights at a target scaled
by AIM over the ratio. In the fakes the start model is predicted at 1.0 ms, so the first ratio
measured (the start's) sets the first target to AIM / ratio."""
import json
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from latency.paired import WHOLE_MODEL_SECONDS

from pipeline import netadapt_rounds as stage
from pipeline.config import PipelineConfig
from search_spaces.resolve import resolve_spec


@dataclass
class FakePipeline:
    results: dict[str, Any]
    path: Path
    config: PipelineConfig = field(default_factory=lambda: PipelineConfig(data="digits", target_ms=1.0))
    said: list[str] = field(default_factory=list)

    def result(self, name: str) -> dict[str, Any]:
        return self.results[name]

    def say(self, text: str) -> None:
        self.said.append(text)


def fake_rounds(monkeypatch, ratios, reachable=True, checks=None):
    calls, checks = [], [] if checks is None else checks

    def run_round(p, index, spec, weights, target_ms, name):
        calls.append((index, spec, weights, round(target_ms, 4)))
        return {"final_spec": f"spec{index}", "predicted_latency_ms": target_ms, "run_dir": f"/runs/{index}"}

    measured = iter(ratios)

    def check(p, final, min_seconds=WHOLE_MODEL_SECONDS):
        ratio = next(measured)
        checks.append((final, min_seconds))
        return {"final_ms": ratio, "budget_ms": 1.0, "ratio": ratio}

    monkeypatch.setattr(stage, "_run_round", run_round)
    monkeypatch.setattr(stage, "measured_check", check)
    monkeypatch.setattr(stage, "parse_spec", lambda text: text)
    monkeypatch.setattr(stage, "_reachable", lambda p, spec, target_ms: reachable)
    monkeypatch.setattr(stage, "_predict", lambda p, spec: 1.0)
    return calls


def pipeline(path: Path) -> FakePipeline:
    return FakePipeline({"search": {"best_spec": "best"}, "table": {"target_ms": 1.0}}, path=path)


def test_rounds_continue_from_the_previous_model_until_within_budget(monkeypatch, tmp_path):
    calls = fake_rounds(monkeypatch, [1.0, 1.10, 1.02, 0.99])
    result = stage.stage_netadapt(pipeline(tmp_path))
    aim = stage.AIM
    assert calls == [(0, "best", None, round(aim, 4)), (1, "spec0", "/runs/0/final.pt", round(aim ** 2 / 1.10, 4)),
                     (2, "spec1", "/runs/1/final.pt", round(aim ** 3 / 1.10 / 1.02, 4))]
    assert result["final_spec"] == "spec2" and result["within_budget"]
    assert [r["ratio"] for r in result["latency_rounds"]] == [1.10, 1.02, 0.99]


def test_a_model_within_budget_ends_after_one_round(monkeypatch, tmp_path):
    calls = fake_rounds(monkeypatch, [1.0, 0.97])
    result = stage.stage_netadapt(pipeline(tmp_path))
    assert len(calls) == 1 and result["within_budget"] and len(result["latency_rounds"]) == 1


@pytest.mark.parametrize("reachable, rounds", [(True, stage.MAX_ROUNDS), (False, 1)])
def test_over_budget_after_the_last_possible_round_is_reported(monkeypatch, tmp_path, reachable, rounds):
    fake_rounds(monkeypatch, [1.0] + [1.2] * stage.MAX_ROUNDS, reachable=reachable)
    result = stage.stage_netadapt(pipeline(tmp_path))
    assert not result["within_budget"] and len(result["latency_rounds"]) == rounds


def test_a_resumed_stage_decides_on_the_recorded_measurements(monkeypatch, tmp_path):
    calls = fake_rounds(monkeypatch, [1.0, 1.10, 0.99, 0.5, 0.5])
    first = stage.stage_netadapt(pipeline(tmp_path))
    again = stage.stage_netadapt(pipeline(tmp_path))  # e.g. killed before the stage was recorded
    assert [c[0] for c in calls] == [0, 1, 0, 1]  # the same rounds; 0.5 (a new measurement) never read
    assert again["latency_rounds"] == first["latency_rounds"]
    assert (tmp_path / "netadapt-2" / stage.CHECK_FILE).is_file()
    assert (tmp_path / "netadapt" / stage.START_FILE).is_file()


@pytest.mark.parametrize("start_ratio, target", [(1.25, 0.8 * stage.AIM), (0.8, 1.25 * stage.AIM), (1.0, stage.AIM)])
def test_the_first_round_aims_at_the_start_prediction_scaled_by_its_measured_ratio(monkeypatch, tmp_path,
                                                                                   start_ratio, target):
    calls = fake_rounds(monkeypatch, [start_ratio, 0.99])
    p = pipeline(tmp_path)
    p.results["table"]["target_ms"] = 0.5  # the table's own target is not what the round aims at
    result = stage.stage_netadapt(p)
    assert calls[0][3] == pytest.approx(target, abs=1e-4) and result["latency_rounds"][0]["target_ms"] == pytest.approx(target)
    assert any("aiming at" in line for line in p.said)


def test_an_anchored_target_out_of_reach_falls_back_to_the_tables_target(monkeypatch, tmp_path):
    calls = fake_rounds(monkeypatch, [1.25, 0.99], reachable=False)
    p = pipeline(tmp_path)
    p.results["table"]["target_ms"] = 0.9
    stage.stage_netadapt(p)
    assert calls[0][3] == 0.9


def test_a_round_begun_before_anchoring_keeps_the_tables_target(monkeypatch, tmp_path):
    calls = fake_rounds(monkeypatch, [0.99])  # no start measurement is taken
    monkeypatch.setattr(stage, "child_run", lambda path, job: object())
    monkeypatch.setattr(stage, "read_setup", lambda folder: SimpleNamespace(spec="best"))  # the begun round's start
    p = pipeline(tmp_path)
    p.results["table"]["target_ms"] = 0.9
    stage.stage_netadapt(p)
    assert calls[0][3] == 0.9 and not (tmp_path / "netadapt" / stage.START_FILE).exists()


def test_the_start_check_is_short_and_each_round_check_spreads_over_the_deciding_span(monkeypatch, tmp_path):
    checks = []
    fake_rounds(monkeypatch, [1.2, 1.03, 0.97], checks=checks)  # start, round 1 over, round 2 in
    stage.stage_netadapt(pipeline(tmp_path))
    assert [seconds for _, seconds in checks] == [stage.START_CHECK_SECONDS, WHOLE_MODEL_SECONDS, WHOLE_MODEL_SECONDS]
    assert stage.START_CHECK_SECONDS < WHOLE_MODEL_SECONDS


def test_round_folders_keep_the_first_round_where_it_was(tmp_path):
    p = pipeline(tmp_path)
    assert [stage.round_folder(p, i).name for i in range(3)] == ["netadapt", "netadapt-2", "netadapt-3"]


def test_measured_check_pairs_the_final_model_with_the_target_like_model(tmp_path, monkeypatch):
    config = PipelineConfig(data="digits", target_like="mobilenetv3-small", target_width=0.5, target_scale=0.9)
    p = FakePipeline({"table": {"target_ms": 123.0, "folder": "the-table"}}, tmp_path, config=config)
    small = resolve_spec("mobilenetv3-small", width=0.5, resolution=32, num_classes=10, in_channels=1)
    large = resolve_spec("mobilenetv3-large", width=1.0, resolution=32, num_classes=10, in_channels=1)
    seen = []

    def paired(specs, *, reference=None, rounds=2, measurer=None, min_seconds=0.0):
        seen.append((specs, reference, measurer))
        assert min_seconds == WHOLE_MODEL_SECONDS  # this check decides: spread over the span
        return [{"ratio": 1.8, "ratio_low": 1.7, "ratio_high": 1.9, "reference_ms": 0.2, "pairs": 24, "latency_ms": 0.36}]

    monkeypatch.setattr(stage, "measure_side_by_side", paired)
    monkeypatch.setattr(stage, "table_measurer", lambda folder: f"measurer of {folder}")
    check = stage.measured_check(p, large)
    # timed alongside the budget's own model, not against the recorded 123 ms, on the table's platform
    assert seen == [([large], small, "measurer of the-table")]
    assert check["ratio"] == pytest.approx(2.0) and check["ratio_low"] == pytest.approx(1.7 / 0.9)
    assert check["budget_ms"] == pytest.approx(0.18) and check["final_ms"] == pytest.approx(0.36)


@pytest.mark.parametrize("low, ratio, over", [(1.01, 1.05, True), (0.99, 1.01, True), (0.98, 1.0, False),
                                              (0.9, 0.95, False)])
def test_a_measured_ratio_above_the_budget_asks_for_another_round(low, ratio, over):
    assert stage.over_budget({"ratio": ratio, "ratio_low": low, "ratio_high": ratio + 0.02}) is over
    assert stage.over_budget({"ratio": ratio}) is over  # a check from before paired timing: the same rule


def test_a_ratio_over_budget_whose_interval_reaches_it_still_gets_another_round(monkeypatch, tmp_path):
    calls = fake_rounds(monkeypatch, [1.0])
    checks = iter([(1.0, 0.99, 1.01), (1.03, 0.99, 1.07), (0.98, 0.97, 0.99)])  # start, round 1, round 2

    def check(p, final, min_seconds=WHOLE_MODEL_SECONDS):
        ratio, low, high = next(checks)
        return {"final_ms": ratio, "budget_ms": 1.0, "ratio": ratio, "ratio_low": low, "ratio_high": high}

    monkeypatch.setattr(stage, "measured_check", check)
    result = stage.stage_netadapt(pipeline(tmp_path))
    assert len(calls) == 2 and result["within_budget"]
    assert calls[1][3] == pytest.approx(round(stage.AIM * stage.AIM / 1.03, 4), abs=1e-4)


@pytest.mark.slow
def test_a_second_round_starts_from_the_first_rounds_model_and_weights(tmp_path, monkeypatch):
    """Two real NetAdapt rounds (toy latency model in place of a table, digits): round 2 reads
    round 1's final spec and ``final.pt`` and ends below its own, lower target. The rounds steer
    by the table's predictions: closed on measurement a round aims at the run's budget in
    measured units instead (tested with the steering)."""
    import torch

    from search_spaces.builder import build_model
    from search_spaces.encoding import format_spec
    from tests.mobilenas import netadapt_toy
    from tests.netadapt.loop_helpers import loop_spec, toy_predict_ms

    class ToyPredictor:
        def __init__(self, *args, **kwargs):
            self.predict_ms = toy_predict_ms

    monkeypatch.setattr(stage, "LazyPredictor", ToyPredictor)
    monkeypatch.setattr("netadapt.job.open_predictor", netadapt_toy.toy_open_predictor)
    spec = loop_spec().replace(resolution=32)
    torch.manual_seed(0)
    weights = tmp_path / "start.pt"
    torch.save(build_model(spec).state_dict(), weights)
    start_ms = toy_predict_ms(spec)
    p = FakePipeline({"table": {"target_ms": 0.9 * start_ms, "folder": "unused"}}, tmp_path,  # the budget
                     config=PipelineConfig(data="digits", target_ms=1.0, workers=1, threads=1,
                                           netadapt_close_on="predicted"))
    p.stop = lambda: False
    first = stage._run_round(p, 0, format_spec(spec), str(weights), 0.9 * start_ms, "given-weights")
    assert first["predicted_latency_ms"] <= 0.9 * start_ms
    second_target = 0.85 * first["predicted_latency_ms"]
    second = stage._run_round(p, 1, first["final_spec"], str(Path(first["run_dir"]) / "final.pt"), second_target,
                              "previous-round")
    assert Path(second["run_dir"]).parent == tmp_path / "netadapt-2"
    assert second["start_predicted_ms"] == pytest.approx(first["predicted_latency_ms"])
    assert second["start_val_top1"] == pytest.approx(first["final_val_top1"])  # the same weights, not retrained
    assert second["predicted_latency_ms"] <= second_target
    assert stage._run_round(p, 1, "ignored", None, 0.0, "ignored") == second  # a finished round is read back


@pytest.mark.parametrize("close_on", ["predicted", "measured"])
def test_the_run_setting_decides_what_netadapts_iterations_steer_by(tmp_path, close_on):
    config = PipelineConfig(data="digits", target_ms=1.0, netadapt_close_on=close_on)
    run = FakePipeline({"table": {"folder": str(tmp_path), "target_ms": 1.0}}, path=tmp_path, config=config)
    assert stage._setup(run, "spec", None, 0.8).netadapt.close_on == close_on


@pytest.mark.parametrize("close_on, index, goal", [("measured", 0, stage.LOOP_GOAL * 0.8), ("measured", 1, stage.LOOP_GOAL * 0.8),
                                                   ("predicted", 0, None)])
def test_the_first_measured_round_stops_its_loop_at_the_loop_goal_of_the_budget(tmp_path, close_on, index, goal):
    """In the loop's measured units the budget is the table's target (paired with the budget's
    model or with the table's reference alike), in correction rounds too."""
    config = PipelineConfig(data="digits", target_ms=1.0, netadapt_close_on=close_on)
    run = FakePipeline({"table": {"folder": str(tmp_path), "target_ms": 0.8}}, path=tmp_path, config=config)
    assert stage._setup(run, "spec", None, 0.7, index=index).netadapt.measured_goal_ms == goal


def test_an_unknown_steering_is_refused_naming_the_setting():
    with pytest.raises(ValueError, match="netadapt.close_on = 'sometimes'"):
        PipelineConfig(data="digits", target_ms=1.0, netadapt_close_on="sometimes")


def test_runs_recorded_before_the_setting_keep_steering_by_the_table():
    recorded = PipelineConfig(data="digits", target_ms=1.0).to_dict()
    del recorded["netadapt_close_on"]
    assert PipelineConfig.from_dict(recorded).netadapt_close_on == "predicted"


@pytest.mark.parametrize("flag, expected", [([], "measured"), (["--netadapt-close-on", "predicted"], "predicted")])
def test_run_command_passes_the_steering(flag, expected):
    from mobilenas.cli import build_parser
    from mobilenas.cli_run import config_from_args

    args = build_parser().parse_args(["run", "--data", "digits", "--target-ms", "1.0", *flag])
    assert config_from_args(args).netadapt_close_on == expected


def test_a_correction_round_that_runs_out_of_cuts_keeps_the_previous_rounds_model(monkeypatch, tmp_path):
    calls = fake_rounds(monkeypatch, [1.0, 1.02])

    def run_round(p, index, spec, weights, target_ms, name):
        calls.append(index)
        if index == 1:
            raise stage.UnreachableTarget("netadapt cannot shrink further")
        return {"final_spec": f"spec{index}", "predicted_latency_ms": target_ms, "run_dir": f"/runs/{index}"}

    monkeypatch.setattr(stage, "_run_round", run_round)
    p = pipeline(tmp_path)
    result = stage.stage_netadapt(p)
    assert calls == [0, 1] and result["final_spec"] == "spec0" and not result["within_budget"]
    assert len(result["latency_rounds"]) == 1 and any("keeping round 1's model" in line for line in p.said)


def test_a_first_round_that_runs_out_of_cuts_fails_the_stage(monkeypatch, tmp_path):
    fake_rounds(monkeypatch, [1.0])
    monkeypatch.setattr(stage, "_run_round", lambda *args: (_ for _ in ()).throw(stage.UnreachableTarget("no cuts")))
    with pytest.raises(stage.UnreachableTarget, match="no cuts"):
        stage.stage_netadapt(pipeline(tmp_path))


def _searched(folder, specs, top1, predicted_ms):
    """A finished search's run folder: its recorded reward (hard, target 1.25 ms) and trials."""
    import json
    from dataclasses import asdict

    from nas.trial_log import TrialLog, TrialRecord

    folder.mkdir()
    (folder / "manifest.json").write_text(json.dumps({"config": {"target_ms": 1.25, "data": "digits", "reward": "hard"}}))
    for i, (spec, accuracy, latency) in enumerate(zip(specs, top1, predicted_ms)):
        TrialLog(folder).append(TrialRecord(i, f"t{i}", f"p{i}", spec, "", latency, accuracy, 0.01,
                                            accuracy * min(1.0, 1.25 / latency), "finished", 2, 1.0))
    return {"best_spec": specs[0], "run_dir": str(folder)}


def test_the_start_is_the_best_searched_model_by_reward_at_its_measured_latency(monkeypatch, tmp_path):
    from search_spaces.encoding import format_spec

    specs = [format_spec(resolve_spec(name, width=1.0, resolution=32, num_classes=10, in_channels=1))
             for name in ("mobilenetv3-large", "mnasnet-a1", "mobilenetv3-small")]
    calls = fake_rounds(monkeypatch, [0.99, 0.99])  # round checks only: the start's measurement is the choice's
    monkeypatch.setattr(stage, "_predictor", lambda p: SimpleNamespace(predict_ms=lambda spec: 1.0))
    measured = []

    def checks(p, models, min_seconds):
        measured.append(len(models))
        return [{"final_ms": r, "budget_ms": 1.0, "ratio": r, "ratio_low": r, "ratio_high": r, "pairs": 24}
                for r in (2.5, 1.25, 1.1)[:len(models)]]

    monkeypatch.setattr(stage, "measured_checks", checks)
    p = pipeline(tmp_path)
    # priced alike by the table; measured, the pick is 2x over the search's 1.25 ms target
    p.results["search"] = _searched(tmp_path / "search", specs, [0.50, 0.45, 0.40], [1.0, 1.1, 1.2])
    stage.stage_netadapt(p)
    assert calls[0][1] == specs[1] and measured == [3]  # 0.45 at 1.25 ms beats 0.50 x 1.25/2.5 and 0.40
    choice = json.loads((tmp_path / "netadapt" / stage.CHOICE_FILE).read_text())
    assert choice["spec"] == specs[1] and choice["rank"] == 2 and len(choice["candidates"]) == 3
    start = json.loads((tmp_path / "netadapt" / stage.START_FILE).read_text())
    assert start["ratio"] == 1.25 and calls[0][3] == pytest.approx(stage.AIM / 1.25, abs=1e-4)  # anchored on it
    (tmp_path / "netadapt" / stage.CHECK_FILE).unlink()
    stage.stage_netadapt(p)  # killed before the round began: the recorded choice, nothing measured again
    assert calls[1][1] == specs[1] and measured == [3]
