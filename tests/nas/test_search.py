"""The search driver in-process (no Ray, no training): logging, rewards, best, reconcile after
a kill at every point of a trial's life, and the result files."""
import math

import pandas as pd
import pytest

from nas.candidate import CandidateResult
from nas.pareto import pareto_front
from nas.registry import STRATEGIES, make_strategy
from nas.report import write_outputs
from nas.search import STATE_FILE, SearchConfig, SearchDriver, priced_spec, run_serial
from nas.trial_log import TRIALS_FILE, TrialLog
from search_spaces.counting import spec_cost
from search_spaces.encoding import format_spec, parse_spec, spec_from_json
from search_spaces.mnasnet_space import MnasNetSpace

SPACE = MnasNetSpace(resolution=32, num_classes=10, in_channels=1)
NAMES = sorted(STRATEGIES)


class Crash(Exception):
    """Stands in for SIGKILL: the process stops where it is, nothing runs after."""


def predict_ms(spec):
    """A deterministic latency stand-in (MAdds); the real table is tested in the CLI tests."""
    return spec_cost(spec).madds / 1e7


def evaluate(request):
    """A deterministic accuracy stand-in: a smooth function of the spec's parameters."""
    params = spec_cost(parse_spec(request.spec)).params
    top1 = 0.5 + 0.4 * math.tanh(params / 2e6)
    return CandidateResult(top1, 0.01, "finished", 1, 0.01)


def new_driver(folder, name="random", trials=6, **config):
    config = SearchConfig(target_ms=2.0, strategy=name, trials=trials, **config)
    return SearchDriver(folder, config, SPACE, make_strategy(name, SPACE, seed=config.seed), predict_ms)


def logged(folder):
    return TrialLog(folder).frame()


def test_serial_search_logs_every_trial_with_its_reward(tmp_path):
    driver = new_driver(tmp_path, trials=5)
    run_serial(driver, evaluate)
    frame = logged(tmp_path)
    assert list(frame["trial"]) == [0, 1, 2, 3, 4]
    assert frame["proposal_id"].is_unique and (frame["status"] == "finished").all()
    reward = driver.config.reward_config()
    for row in frame.to_dict("records"):
        spec = parse_spec(row["spec"])
        assert row["latency_ms"] == pytest.approx(predict_ms(spec))
        assert row["reward"] == pytest.approx(reward(row["top1"], row["latency_ms"]))
        assert SPACE.decode([int(i) for i in row["decisions"].split()]) == spec
    assert driver.best().reward == frame["reward"].max()
    assert driver.finished


@pytest.mark.parametrize("status", ["failed", "diverged"])
def test_failed_trial_gets_the_worst_reward_and_the_search_goes_on(tmp_path, status):
    driver = new_driver(tmp_path, reward="absolute", trials=3)
    outcomes = iter([CandidateResult(math.nan, math.nan, status, 0, 0.1, "boom")])
    run_serial(driver, lambda r: next(outcomes, None) or evaluate(r))
    frame = logged(tmp_path)
    assert frame.loc[0, "status"] == status and frame.loc[0, "reward"] == driver.reward.worst < 0
    assert len(frame) == 3 and driver.best().trial != 0


def reference_run(folder, name, trials):
    folder.mkdir()
    driver = new_driver(folder, name, trials)
    run_serial(driver, evaluate)
    return logged(folder)


def crash_after(driver, where, at_trial):
    """Make the driver 'die' at trial ``at_trial``: while training (after the ask was saved),
    after the row was appended (before the strategy heard it), or after the tell (before the
    state was saved)."""
    calls = {"n": 0}
    if where == "training":
        def evaluate_or_die(request):
            if request.trial == at_trial:
                raise Crash
            return evaluate(request)
        return evaluate_or_die
    if where == "logged":
        tell = driver.strategy.tell

        def tell_or_die(pid, outcome):
            calls["n"] += 1
            if calls["n"] == at_trial + 1:
                raise Crash
            tell(pid, outcome)
        driver.strategy.tell = tell_or_die
    if where == "told":
        save = driver.save_state

        def save_or_die():
            if driver.done == at_trial + 1 and calls["n"] == 0 and driver.records[-1].trial == at_trial:
                calls["n"] += 1
                raise Crash
            save()
        driver.save_state = save_or_die
    return evaluate


LEARNING = {"rl", "reinforce"}  # ~1 MB of state saved per step: their extra crash points run with -m slow
CRASHES = [pytest.param(name, where, marks=[pytest.mark.slow] if name in LEARNING and where != "training" else [])
           for name in NAMES for where in ("training", "logged", "told")]


@pytest.mark.parametrize("name, where", CRASHES)
def test_resume_after_a_kill_loses_nothing_repeats_nothing_and_continues_the_strategy(tmp_path, name, where):
    trials = 7
    expected = reference_run(tmp_path / "reference", name, trials)
    (tmp_path / "run").mkdir()
    driver = new_driver(tmp_path / "run", name, trials)
    with pytest.raises(Crash):
        run_serial(driver, crash_after(driver, where, at_trial=3))
    before = logged(tmp_path / "run")
    resumed = new_driver(tmp_path / "run", name, trials)
    counts = resumed.resume()
    assert counts == {"logged": len(before), "retold": int(where != "training"), "rerun": int(where == "training")}
    run_serial(resumed, evaluate)
    after = logged(tmp_path / "run")
    assert after.iloc[:len(before)].equals(before)                   # nothing lost
    assert after["proposal_id"].is_unique and len(after) == trials   # nothing repeated
    columns = ["trial", "proposal_id", "spec", "reward"]
    assert after[columns].equals(expected[columns])                  # the strategy continued as if never killed


def test_resume_of_a_folder_without_state_but_with_trials_is_refused(tmp_path):
    driver = new_driver(tmp_path, trials=2)
    run_serial(driver, evaluate)
    (tmp_path / STATE_FILE).unlink()
    with pytest.raises(ValueError, match="search_state.json is missing"):
        new_driver(tmp_path, trials=2).resume()


def test_resume_with_another_strategy_is_refused(tmp_path):
    run_serial(new_driver(tmp_path, "random", trials=2), evaluate)
    with pytest.raises(ValueError, match="does not match"):
        new_driver(tmp_path, "evolution", trials=2).resume()


def test_a_torn_trial_row_is_set_aside_and_the_trial_run_again(tmp_path):
    driver = new_driver(tmp_path, trials=4)
    with pytest.raises(Crash):
        run_serial(driver, crash_after(driver, "training", at_trial=2))
    with (tmp_path / TRIALS_FILE).open("a") as handle:
        handle.write("2,serial_00002,random-2,r32_i1")  # a kill mid-append
    resumed = new_driver(tmp_path, trials=4)
    assert resumed.resume()["rerun"] == 1
    run_serial(resumed, evaluate)
    assert list(logged(tmp_path)["trial"]) == [0, 1, 2, 3]
    assert (tmp_path / (TRIALS_FILE + ".torn")).read_text().startswith("2,serial_00002")


def test_outputs_best_json_is_spec_json_and_pareto_is_non_dominated(tmp_path):
    driver = new_driver(tmp_path, trials=6)
    run_serial(driver, evaluate)
    summary = write_outputs(driver, tmp_path)
    best = spec_from_json((tmp_path / "best.json").read_text())
    assert summary["best_spec"] == driver.best().spec and best == parse_spec(summary["best_spec"])
    assert "| input | operator |" in (tmp_path / "best.md").read_text()
    assert (tmp_path / "pareto.png").stat().st_size > 1000
    front = pd.read_csv(tmp_path / "pareto.csv")
    every = logged(tmp_path)
    for row in front.to_dict("records"):
        dominated = every[(every["latency_ms"] <= row["latency_ms"]) & (every["top1"] >= row["top1"]) &
                          ((every["latency_ms"] < row["latency_ms"]) | (every["top1"] > row["top1"]))]
        assert dominated.empty


@pytest.mark.parametrize("finished, pruned", [("finished", "pruned"), ("ok", "early_stopped")])  # earlier files
def test_pareto_front_drops_dominated_and_unscored_rows(finished, pruned):
    frame = pd.DataFrame({"trial": [0, 1, 2, 3, 4], "latency_ms": [1.0, 2.0, 1.5, 0.5, 3.0],
                          "top1": [0.5, 0.7, 0.4, 0.9, 0.95], "status": [finished, finished, finished, "failed", pruned]})
    assert list(pareto_front(frame)["trial"]) == [0, 1, 4]


def test_priced_spec_is_the_trained_spec_unless_a_deployment_shape_is_set():
    spec = SPACE.decode([0] * len(SPACE.cardinalities))
    assert priced_spec(spec, SearchConfig(target_ms=1.0)) is spec
    deployed = priced_spec(spec, SearchConfig(target_ms=1.0, price_resolution=224, price_in_channels=3, price_classes=1000))
    assert (deployed.resolution, deployed.in_channels, deployed.num_classes) == (224, 3, 1000)
    assert deployed.blocks == spec.blocks


@pytest.mark.parametrize("kwargs, message", [
    ({"trials": 0}, "--trials"), ({"concurrency": 0}, "--concurrency"), ({"cpus_per_trial": True}, "--cpus-per-trial"),
    ({"strategy": "grid"}, "--strategy"), ({"reward": "linear"}, "--reward"), ({"target_ms": -1.0}, "target_ms"),
    ({"w": 0.5}, "alpha"), ({"asha": True, "epochs": 1}, "--asha"), ({"price_classes": 1}, "--price-classes"),
])
def test_search_config_rejects_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SearchConfig(**({"target_ms": 1.0} | kwargs))


def test_a_trials_csv_of_an_earlier_version_reads_in_todays_words(tmp_path):
    from nas.trial_log import COLUMNS

    rows = [",".join(COLUMNS)] + [f"{i},t{i},p{i},spec,0 1,0.5,0.9,0.01,0.8,{status},2,1.0," for i, status in
                                  enumerate(["ok", "early_stopped", "failed"])]
    (tmp_path / "trials.csv").write_text("\n".join(rows) + "\n")
    log = TrialLog(tmp_path)
    assert [r.status for r in log.records()] == ["finished", "pruned", "failed"]
    assert list(log.frame()["status"]) == ["finished", "pruned", "failed"]


def test_a_candidate_that_cannot_be_built_for_the_data_is_infeasible(monkeypatch):
    import nas.candidate as candidate

    def no_fit(spec, data):
        raise ValueError("resolution 4 is too small for 5 stride-2 layers")

    monkeypatch.setattr(candidate, "adapt_spec", no_fit)
    spec = SPACE.decode([0] * len(SPACE.cardinalities))
    result = candidate.evaluate_candidate(format_spec(spec), None, epochs=1)
    assert result.status == "infeasible" and "too small" in result.message


def test_search_config_round_trips_and_refuses_unknown_keys_and_values_out_of_range():
    import dataclasses

    config = SearchConfig(target_ms=0.5, trials=4, train_subset=100)
    assert SearchConfig.from_dict(dataclasses.asdict(config)) == config
    with pytest.raises(ValueError, match=r"manifest: config has unknown keys \['lr'\]"):
        SearchConfig.from_dict({**dataclasses.asdict(config), "lr": 0.1}, "manifest: config")
    with pytest.raises(ValueError, match="--train-subset = 0 is not allowed; expected None or an integer >= 1"):
        SearchConfig(target_ms=0.5, train_subset=0)
