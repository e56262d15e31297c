"""The evaluator seam: any object with ``evaluate(spec) -> CandidateResult`` drives a search end
to end in-process; the proxy and supernet evaluators meet the protocol; the supernet evaluator
is deterministic, absorbs foreign specs and refuses a bad run folder in one line."""
import dataclasses
import math

import numpy as np

from storage.status import Status
import pytest
import torch

from nas.candidate import CandidateResult
from nas.evaluator import Evaluator, ProxyEvaluator, make_evaluator, request_fn
from nas.registry import make_strategy
from nas.report import write_outputs
from nas.search import SearchConfig, SearchDriver, run_serial
from nas.supernet import Supernet
from nas.supernet_eval import SupernetEvaluator, calibration_images
from nas.trial_log import TrialLog
from search_spaces.counting import spec_cost
from search_spaces.registry import make_space
from training.datasets import load_dataset


class ToyEvaluator:
    """Accuracy a smooth function of the parameter count; records what it was asked."""

    name = "toy"
    per_epoch = False

    def __init__(self) -> None:
        self.seen = []

    def evaluate(self, spec, *, on_epoch=None) -> CandidateResult:
        self.seen.append(spec)
        top1 = 0.5 + 0.4 * math.tanh(spec_cost(spec).params / 2e6)
        return CandidateResult(top1, 0.01, Status.FINISHED, 0, 0.001)

    def describe(self) -> dict:
        return {"name": self.name}


@pytest.fixture(scope="module")
def digits():
    data = load_dataset("digits", resolution=16)
    return dataclasses.replace(data, x_val=data.x_val[:60], y_val=data.y_val[:60])


def driver_for(folder, space, strategy="evolution", trials=8) -> SearchDriver:
    config = SearchConfig(target_ms=1.0, data="digits", strategy=strategy, trials=trials,
                          strategy_config={"population_size": 4, "sample_size": 2} if strategy == "evolution" else None)
    return SearchDriver(folder, config, space, make_strategy(strategy, space, seed=0, config=config.strategy_config),
                        lambda spec: spec_cost(spec).madds / 1e6)


def test_a_toy_evaluator_drives_a_search_end_to_end_in_process(tmp_path):
    space = make_space("mnasnet", resolution=16, num_classes=10, in_channels=1)
    toy = ToyEvaluator()
    assert isinstance(toy, Evaluator)
    driver = driver_for(tmp_path, space)
    run_serial(driver, request_fn(toy))
    frame = TrialLog(tmp_path).frame()
    assert len(frame) == 8 and (frame["status"] == "finished").all() and len(toy.seen) == 8
    for spec, top1 in zip(toy.seen, frame["top1"]):
        assert top1 == pytest.approx(0.5 + 0.4 * math.tanh(spec_cost(spec).params / 2e6))
    summary = write_outputs(driver, tmp_path)
    assert summary["trials"] == 8 and summary["best_spec"] is not None


def test_proxy_evaluator_meets_the_protocol_with_the_search_settings(digits):
    config = SearchConfig(target_ms=1.0, data="digits", epochs=3, train_subset=100, cpus_per_trial=2, seed=4)
    proxy = make_evaluator(config, digits)
    assert isinstance(proxy, ProxyEvaluator) and isinstance(proxy, Evaluator) and proxy.per_epoch
    assert proxy.describe() == {"name": "proxy", "epochs": 3, "train_subset": 100, "seed": 4, "threads": 2,
                                "device": "cpu", "data": "digits"}


@pytest.fixture(scope="module")
def supernet_evaluator(digits):
    torch.manual_seed(0)
    space = make_space("mnasnet-mbconv", resolution=16, num_classes=10, in_channels=1)
    return SupernetEvaluator(Supernet(space), digits, calibration_images(digits, 32, seed=0), source={"run_id": "test"})


def test_supernet_evaluator_is_deterministic_and_absorbs_foreign_specs(supernet_evaluator):
    space = supernet_evaluator.net.space
    assert isinstance(supernet_evaluator, Evaluator) and not supernet_evaluator.per_epoch
    spec = space.sample(np.random.default_rng(0))
    first, second = supernet_evaluator.evaluate(spec), supernet_evaluator.evaluate(spec)
    assert first.status == "finished" and first.epochs == 0 and first.top1 == second.top1
    assert first.top1_stderr == pytest.approx(math.sqrt(first.top1 * (1 - first.top1) / 60))
    other = make_space("mnasnet-small-mbconv", resolution=16, num_classes=10, in_channels=1).sample(np.random.default_rng(0))
    outside = supernet_evaluator.evaluate(other)
    assert outside.status == "failed" and "not a sub-network" in outside.message


def test_supernet_evaluator_drives_a_search_in_process(tmp_path, supernet_evaluator):
    driver = driver_for(tmp_path, supernet_evaluator.net.space, strategy="random", trials=3)
    run_serial(driver, request_fn(supernet_evaluator))
    frame = TrialLog(tmp_path).frame()
    assert len(frame) == 3 and (frame["status"] == "finished").all() and (frame["epochs"] == 0).all()


@pytest.mark.parametrize("changes, message", [
    ({"evaluator": "oracle"}, "--evaluator 'oracle' is not known"),
    ({"evaluator": "supernet"}, "needs --supernet RUN_DIR"),
    ({"supernet": "some/run"}, "only used with --evaluator supernet"),
    ({"evaluator": "supernet", "supernet": "x", "epochs": 2, "asha": True}, "apply to the proxy evaluator only"),
])
def test_search_settings_refuse_an_inconsistent_evaluator(changes, message):
    with pytest.raises(ValueError, match=message):
        SearchConfig(target_ms=1.0, **changes)


def test_a_missing_supernet_run_folder_is_one_clear_error(tmp_path, digits):
    config = SearchConfig(target_ms=1.0, data="digits", evaluator="supernet", supernet=str(tmp_path / "nope"))
    with pytest.raises(FileNotFoundError, match="is not a run folder"):
        make_evaluator(config, digits)
