"""The Searcher adapter called directly (no cluster): what Tune is told, and what the driver
logs for a finished, errored or early-stopped trial."""
import math

import pytest

from nas.candidate import CandidateResult
from nas.registry import make_strategy
from nas.search import SearchConfig, SearchDriver
from nas.trial_log import TrialLog
from search_spaces.mnasnet_space import MnasNetSpace

tune = pytest.importorskip("nas.tune")
Searcher = tune.Searcher
SPACE = MnasNetSpace(resolution=32, num_classes=10, in_channels=1)


def searcher_for(folder, trials=3, epochs=1, stop=lambda: False):
    config = SearchConfig(target_ms=1.0, strategy="random", trials=trials, epochs=epochs, asha=epochs > 1)
    driver = SearchDriver(folder, config, SPACE, make_strategy("random", SPACE, seed=0), lambda spec: 0.8)
    return tune.StrategySearcher(driver, should_stop=stop), driver


def report(top1, epochs, final):
    return {**CandidateResult(top1, 0.01, "finished", epochs, 2.0).to_dict(), "final": final, "epoch": epochs}


def test_suggest_hands_out_plain_configs_until_the_budget_is_issued(tmp_path):
    searcher, driver = searcher_for(tmp_path, trials=2)
    first, second = searcher.suggest("t1"), searcher.suggest("t2")
    assert set(first) == {"spec", "latency_ms", "trial"} and first["spec"].startswith("r32_i1_n10|")
    assert first["latency_ms"] == 0.8 and (first["trial"], second["trial"]) == (0, 1)
    assert searcher.suggest("t3") == Searcher.FINISHED
    searcher.on_trial_complete("t1", report(0.5, 1, True))
    assert searcher.suggest("t4") == Searcher.FINISHED          # one in flight, budget of 2 issued
    searcher.on_trial_complete("t2", result=None, error=True)
    frame = TrialLog(tmp_path).frame()
    assert list(frame["status"]) == ["finished", "failed"] and list(frame["trial_id"]) == ["t1", "t2"]
    assert frame.loc[1, "reward"] == driver.reward.worst and math.isclose(frame.loc[0, "top1"], 0.5)
    assert driver.finished


def test_a_trial_whose_last_report_is_before_the_last_epoch_was_stopped_early(tmp_path):
    searcher, _ = searcher_for(tmp_path, trials=2, epochs=3)
    searcher.suggest("a"), searcher.suggest("b")
    searcher.on_trial_complete("a", report(0.3, 1, False))
    searcher.on_trial_complete("b", report(0.6, 3, True))
    frame = TrialLog(tmp_path).frame()
    assert list(frame["status"]) == ["pruned", "finished"] and list(frame["epochs"]) == [1, 3]


def test_a_pruned_trial_is_told_pruned_with_the_reward_it_reached(tmp_path):
    searcher, driver = searcher_for(tmp_path, trials=1, epochs=3)
    told = []
    driver.strategy.tell = lambda proposal_id, outcome: told.append(outcome)
    searcher.suggest("a")
    searcher.on_trial_complete("a", report(0.3, 1, False))
    (outcome,) = told
    assert outcome.status == "pruned" and outcome.usable and outcome.reward == driver.reward(0.3, 0.8)


def test_a_stop_request_finishes_the_experiment_and_keeps_the_state(tmp_path):
    stop = {"now": False}
    searcher, driver = searcher_for(tmp_path, trials=4, stop=lambda: stop["now"])
    searcher.suggest("a")
    stop["now"] = True
    assert searcher.suggest("b") == Searcher.FINISHED
    searcher.on_trial_complete("a", report(0.4, 1, True))
    assert driver.done == 1 and not driver.finished                 # resumable: 3 trials left


def test_save_and_restore_carry_the_strategy_state(tmp_path):
    searcher, driver = searcher_for(tmp_path / "a", trials=4)
    (tmp_path / "a").mkdir()
    searcher.suggest("x")
    searcher.save(str(tmp_path / "searcher.json"))
    other, other_driver = searcher_for(tmp_path / "b", trials=4)
    other.restore(str(tmp_path / "searcher.json"))
    assert other_driver.strategy.state_dict() == driver.strategy.state_dict()


def test_tune_can_pickle_the_searcher_whatever_its_stop_callback_holds(tmp_path):
    """Tune pickles its config, searcher included, into tuner.pkl; a stop callback reaching a
    lock (a pipeline's run folder, once the process has joined a Ray cluster) must not fail the
    search, and the live driver stays with the searcher in this process."""
    import threading

    from ray import cloudpickle as pickle  # what Tune pickles with

    lock = threading.Lock()
    searcher, driver = searcher_for(tmp_path, stop=lambda: lock.locked())
    searcher.suggest("t1")
    copy = pickle.loads(pickle.dumps(searcher))
    assert not hasattr(copy, "driver") and not hasattr(copy, "should_stop")
    assert searcher.driver is driver and searcher.requests  # the searcher itself is untouched
