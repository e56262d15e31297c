"""Golden values of the MnasNet, hard-constraint and TuNAS absolute rewards."""
import json
import math

import numpy as np
import pytest

from nas.rewards import RewardConfig, absolute_reward, mnasnet_reward


def test_mnasnet_reward_is_accuracy_at_the_target():
    assert RewardConfig("mnasnet", 80.0)(0.75, 80.0) == pytest.approx(0.75)


def test_mnasnet_reward_at_twice_the_target_scales_by_half_to_the_007():
    assert RewardConfig("mnasnet", 80.0)(0.75, 160.0) == pytest.approx(0.75 * 0.5 ** 0.07)
    assert RewardConfig("mnasnet", 80.0)(0.75, 160.0) == pytest.approx(0.71448, abs=1e-5)


def test_mnasnet_reward_at_half_the_target_rewards_speed():
    assert RewardConfig("mnasnet", 80.0)(0.75, 40.0) == pytest.approx(0.75 * 2 ** 0.07)


def test_mobilenetv3_small_exponent():
    config = RewardConfig.mnasnet(10.0, w=-0.15)
    assert (config.alpha, config.beta) == (-0.15, -0.15)
    assert config(0.6, 20.0) == pytest.approx(0.6 * 0.5 ** 0.15)


def test_hard_constraint_ignores_speed_below_and_scales_by_target_over_latency_above():
    config = RewardConfig("hard", 10.0)
    assert (config.alpha, config.beta) == (0.0, -1.0)
    assert config(0.7, 5.0) == pytest.approx(0.7)
    assert config(0.7, 10.0) == pytest.approx(0.7)
    assert config(0.7, 20.0) == pytest.approx(0.35)


def test_absolute_reward_peaks_at_the_target():
    config = RewardConfig("absolute", 10.0)
    assert config.beta == -0.07
    assert config(0.7, 10.0) == pytest.approx(0.7)
    assert config(0.7, 20.0) == pytest.approx(0.7 - 0.07)
    assert config(0.7, 5.0) == pytest.approx(0.7 - 0.035)
    assert absolute_reward(0.7, 15.0, target_ms=10.0, beta=-0.1) == pytest.approx(0.65)


@pytest.mark.parametrize("kind", ["mnasnet", "hard", "absolute"])
def test_reward_increases_with_accuracy_and_decreases_with_latency_over_target(kind):
    config = RewardConfig(kind, 10.0)
    accuracies = np.linspace(0.0, 1.0, 11)
    assert np.all(np.diff([config(a, 15.0) for a in accuracies]) > 0)
    latencies = np.linspace(10.0, 40.0, 13)
    assert np.all(np.diff([config(0.8, lat) for lat in latencies]) < 0)


def test_mnasnet_soft_reward_decreases_with_latency_everywhere():
    latencies = np.geomspace(1.0, 100.0, 30)
    assert np.all(np.diff([mnasnet_reward(0.8, lat, target_ms=10.0, alpha=-0.07, beta=-0.07) for lat in latencies]) < 0)


@pytest.mark.parametrize("kind", ["mnasnet", "hard", "absolute"])
@pytest.mark.parametrize("top1, latency_ms", [(math.nan, 5.0), (0.5, math.nan), (None, 5.0), (0.5, None),
                                              (math.inf, 5.0), (0.5, math.inf), (0.5, -math.inf)])
def test_missing_or_non_finite_values_give_the_worst_reward(kind, top1, latency_ms):
    config = RewardConfig(kind, 10.0)
    assert config(top1, latency_ms) == config.worst


@pytest.mark.parametrize("kind", ["mnasnet", "hard", "absolute"])
def test_worst_bounds_every_reward(kind):
    config = RewardConfig(kind, 10.0)
    rng = np.random.default_rng(0)
    values = [config(float(a), float(lat)) for a, lat in zip(rng.uniform(0, 1, 500), rng.uniform(0.01, 1000, 500))]
    assert min(values) >= config.worst
    assert config(0.0, 1e6) == pytest.approx(config.worst)


def test_absolute_worst_is_a_zero_accuracy_model_ten_times_over_target():
    assert RewardConfig("absolute", 10.0).worst == pytest.approx(-0.07 * 9)


@pytest.mark.parametrize("kwargs, message", [
    ({"kind": "product", "target_ms": 1.0}, "kind"),
    ({"kind": "mnasnet", "target_ms": 0.0}, "target_ms"),
    ({"kind": "mnasnet", "target_ms": math.nan}, "target_ms"),
    ({"kind": "mnasnet", "target_ms": 1.0, "alpha": 0.07}, "alpha"),
    ({"kind": "mnasnet", "target_ms": 1.0, "beta": math.inf}, "beta"),
    ({"kind": "hard", "target_ms": 1.0, "alpha": -0.07}, "alpha"),
    ({"kind": "absolute", "target_ms": 1.0, "alpha": -0.1}, "alpha"),
])
def test_config_rejects_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RewardConfig(**kwargs)


def test_percent_accuracy_and_non_positive_latency_are_caller_errors():
    config = RewardConfig("mnasnet", 10.0)
    with pytest.raises(ValueError, match="top1"):
        config(75.0, 10.0)
    with pytest.raises(ValueError, match="latency_ms"):
        config(0.5, 0.0)


def test_config_round_trips_through_json_and_rejects_unknown_keys():
    config = RewardConfig("absolute", 12.5, beta=-0.2)
    assert RewardConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(ValueError, match="gamma"):
        RewardConfig.from_dict({"kind": "mnasnet", "target_ms": 1.0, "gamma": 1})


def test_config_is_frozen():
    config = RewardConfig("mnasnet", 10.0)
    with pytest.raises(AttributeError):
        config.target_ms = 5.0
