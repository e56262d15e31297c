"""Paired timing (latency.paired): a ratio to a reference that a changing machine speed cancels."""
from __future__ import annotations

import math

import numpy as np
import pytest

from latency.paired import (PairedRatio, balanced, block_runner, measure_paired, median_interval,
                            paired_ratios, summarise)
from tests.latency.fakes import FakeMeasurer


class SwingingMachine:
    """A machine whose speed jumps at random between calls (1x to 2x slower), as a noisy VM does;
    a model's run costs ``work`` units times the speed of that moment."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        self.speed = 1.0

    def runner(self, work: float):
        def run(k: int) -> np.ndarray:
            if self.rng.random() < 0.3:  # a new moment: the speed moves
                self.speed = self.rng.uniform(1.0, 2.0)
            return np.full(k, work * self.speed) * self.rng.uniform(0.99, 1.01, k)
        return run


def test_paired_ratio_holds_while_the_machine_speed_swings():
    machine = SwingingMachine(seed=3)
    model, reference = machine.runner(3.0), machine.runner(1.0)
    ratios, reference_samples = paired_ratios(model, reference, pairs=200, block=1)
    result = summarise(ratios, reference_samples)
    assert result.ratio == pytest.approx(3.0, rel=0.02) and result.low <= result.ratio <= result.high
    unpaired = np.median([np.median(model(1)) for _ in range(200)]) / np.median([np.median(reference(1)) for _ in range(200)])
    assert np.ptp(reference_samples) > 0.5  # the speed did swing
    assert abs(result.ratio - 3.0) < abs(unpaired - 3.0) or abs(unpaired - 3.0) < 0.06


def test_pairs_alternate_order_and_count_every_reference_run():
    calls = []
    model = lambda k: (calls.append("m"), np.ones(k) * 2)[1]  # noqa: E731
    reference = lambda k: (calls.append("r"), np.ones(k))[1]  # noqa: E731
    ratios, samples = paired_ratios(model, reference, pairs=4, block=3)
    assert "".join(calls) == "rmmrrmmr" and ratios.tolist() == [2.0] * 4 and samples.size == 4


def test_a_preempted_run_in_a_block_does_not_move_the_ratio():
    slow = iter(range(10**6))
    model = lambda k: np.array([2.0] * (k - 1) + [50.0 if next(slow) % 2 else 2.0])  # noqa: E731
    reference = lambda k: np.array([1.0] * k)  # noqa: E731
    ratios, _ = paired_ratios(model, reference, pairs=10, block=3)
    assert ratios.tolist() == [2.0] * 10


def test_median_interval_brackets_the_median_and_narrows_with_more_values():
    rng = np.random.default_rng(0)
    few, many = rng.normal(1, 0.1, 20), rng.normal(1, 0.1, 2000)
    for values in (few, many):
        median, low, high = median_interval(values)
        assert low <= median <= high and median == pytest.approx(np.median(values))
    assert np.subtract(*median_interval(many)[2:0:-1]) < np.subtract(*median_interval(few)[2:0:-1])
    assert median_interval([5.0]) == (5.0, 5.0, 5.0)
    with pytest.raises(ValueError, match="no values"):
        median_interval([])


def test_summarise_drops_unusable_pairs_and_refuses_all_unusable():
    result = summarise(np.array([2.0, np.nan, 2.0, 0.0, 2.0]), np.array([1.0, 1.0]))
    assert result.pairs == 3 and result.ratio == 2.0 and result.latency_ms == 2.0
    assert result.in_units_of(0.5) == 1.0 and "2.000x" in result.describe()
    with pytest.raises(ValueError, match="no usable pair"):
        summarise(np.array([np.nan, -1.0]), np.array([1.0]))


def test_a_measurer_without_runner_is_paired_call_by_call():
    measurer = FakeMeasurer(repeats=3)
    run = block_runner(measurer, b"x" * 1000, (1, 8, 8))
    assert run(1).shape == (3,) and measurer.calls == 1  # a device call is one block of its own repeats


def test_measure_paired_checks_its_inputs_and_reports_json_safe_figures():
    with pytest.raises(ValueError, match="2 models but 1 input shapes"):
        measure_paired(FakeMeasurer(), [b"a", b"b"], [(1, 8, 8)], b"r", (1, 8, 8))
    with pytest.raises(ValueError, match="pairs = 0"):
        paired_ratios(lambda k: np.ones(k), lambda k: np.ones(k), pairs=0)
    figures = PairedRatio(1.5, 1.4, 1.6, 2.0, 10).to_dict()
    assert figures["latency_ms"] == 3.0 and figures["pairs"] == 10


class NoisyModels:
    """A measurer whose runs of model ``b"noisy"`` scatter +/-30% and of any other model not at all."""

    def __init__(self) -> None:
        self.rng = np.random.default_rng(0)

    def runner(self, model: bytes, shape: tuple[int, ...]):
        scatter = 0.3 if model == b"noisy" else 0.0
        rng = self.rng

        class Run:
            def run(self, k: int, warmup: int = 0) -> np.ndarray:
                return 2.0 * (1 + rng.uniform(-scatter, scatter, k))
        return Run()


def test_precision_adds_pairs_only_where_the_interval_is_wide_and_stops_at_the_cap():
    steady, noisy = measure_paired(NoisyModels(), [b"steady", b"noisy"], [(1, 8, 8)] * 2, b"ref", (1, 8, 8),
                                   pairs=24, block=1, precision=0.015, max_pairs=200)
    assert steady.pairs == 24 and steady.relative_halfwidth == 0.0
    assert noisy.pairs == 200 and noisy.ratio == pytest.approx(1.0, rel=0.1)
    plain = measure_paired(NoisyModels(), [b"noisy"], [(1, 8, 8)], b"ref", (1, 8, 8), pairs=24, block=1)[0]
    assert plain.pairs == 24 and plain.relative_halfwidth > noisy.relative_halfwidth


def test_precision_is_met_before_the_cap_when_the_scatter_allows():
    result = measure_paired(NoisyModels(), [b"noisy"], [(1, 8, 8)], b"ref", (1, 8, 8), pairs=24, block=1,
                            precision=0.1, max_pairs=2000)[0]
    assert result.relative_halfwidth <= 0.1 and 24 < result.pairs < 2000 and result.pairs % 24 == 0


def test_precision_stops_adding_pairs_after_the_time_budget():
    result = measure_paired(NoisyModels(), [b"noisy"], [(1, 8, 8)], b"ref", (1, 8, 8), pairs=24, block=1,
                            precision=0.001, max_pairs=10**6, max_seconds=0.0)[0]
    assert result.pairs == 24  # the first pairs are always taken; none added past the budget


def test_min_seconds_spreads_every_models_passes_over_that_span(monkeypatch):
    clock = iter(range(10**6))  # each reading of the clock one second later
    monkeypatch.setattr("latency.paired.time.perf_counter", lambda: float(next(clock)))
    short = measure_paired(NoisyModels(), [b"steady", b"noisy"], [(1, 8, 8)] * 2, b"ref", (1, 8, 8),
                           pairs=24, block=1)
    spread = measure_paired(NoisyModels(), [b"steady", b"noisy"], [(1, 8, 8)] * 2, b"ref", (1, 8, 8),
                            pairs=24, block=1, max_pairs=24, min_seconds=40.0)
    assert [r.pairs for r in short] == [24, 24]
    assert spread[0].pairs == spread[1].pairs > 24  # every model alike, past max_pairs
    assert spread[0].pairs % 24 == 0 and spread[0].relative_halfwidth == 0.0


class TimedModels:
    """Runs of models named ``b"short..."`` take 0.1 ms, of any other 5 ms; records every block's length."""

    def __init__(self) -> None:
        self.blocks: dict[bytes, list[int]] = {}

    def runner(self, model: bytes, shape: tuple[int, ...]):
        blocks = self.blocks.setdefault(model, [])

        class Run:
            def run(self, k: int, warmup: int = 0) -> np.ndarray:
                blocks.append(k)
                return np.full(k, 0.1 if model.startswith(b"short") else 5.0)
        return Run()


def test_unset_block_has_ten_runs_for_every_model_short_or_long():
    machine = TimedModels()
    short, long = measure_paired(machine, [b"short", b"long"], [(1, 8, 8)] * 2, b"long-ref", (1, 8, 8), pairs=4)
    assert short.ratio == pytest.approx(0.02) and long.ratio == 1.0
    for model in (b"short", b"long", b"long-ref"):
        assert {k for k in machine.blocks[model] if k} == {10}  # k = 0: a new session's warm-up
    fixed = TimedModels()
    measure_paired(fixed, [b"short"], [(1, 8, 8)], b"ref", (1, 8, 8), pairs=4, block=5)
    assert {k for k in fixed.blocks[b"short"] if k} == {5}


class OrderedSessions:
    """Every session runs 3% slower than the one made after it (as where a session is placed in
    memory can make it); records the order of the sessions made."""

    def __init__(self) -> None:
        self.made: list[bytes] = []

    def runner(self, model: bytes, shape: tuple[int, ...]):
        self.made.append(model)
        speed = 1.03 ** -len(self.made)

        class Run:
            def run(self, k: int, warmup: int = 0) -> np.ndarray:
                return np.full(k, 2.0 * speed)
        return Run()


def test_the_order_of_making_sessions_cancels_between_passes():
    machine = OrderedSessions()
    same = measure_paired(machine, [b"model"], [(1, 8, 8)], b"model", (1, 8, 8), pairs=24, block=3)[0]
    assert same.ratio == pytest.approx(1.0, abs=1e-9) and same.pairs == 24
    assert machine.made == [b"model"] * 4  # two passes, each with its own pair of sessions
    one_order = paired_ratios(lambda k: np.full(k, 2.0 / 1.03**2), lambda k: np.full(k, 2.0 / 1.03), pairs=4)[0]
    assert np.median(one_order) == pytest.approx(1 / 1.03), "one order alone reads the model 3% fast"


def test_balanced_groups_keep_every_pair_around_the_common_centre():
    groups = [np.array([0.97, 0.975, 0.98]), np.array([1.02, 1.025, 1.03, np.nan])]
    pooled = balanced(groups)
    assert pooled.size == 6 and np.median(pooled) == pytest.approx(np.sqrt(0.975 * 1.025))
    assert balanced([np.array([np.nan])]).size == 0


def test_a_reading_of_zero_is_a_clock_that_did_not_advance_not_a_run():
    """A thread clock that ticks coarsely can read 0 for a whole run: that reading is skipped,
    and a pair whose block read nothing else is dropped instead of dividing by zero."""
    from latency.paired import fastest, paired_ratios, summarise

    assert fastest(np.array([0.0, 0.5, 0.4])) == 0.4
    assert np.isnan(fastest(np.array([0.0, 0.0])))
    blocks = iter([np.array([0.0, 0.0]), np.array([0.6, 0.0])] + [np.array([0.0, 0.2])] * 6)
    reference = lambda k: next(blocks)
    ratios, refs = paired_ratios(lambda k: np.array([0.3, 0.0]), reference, pairs=4, block=2)
    assert np.isnan(ratios[0]) and ratios[1] == pytest.approx(0.5) and ratios[2] == pytest.approx(1.5)
    result = summarise(ratios, refs)
    assert result.pairs == 3 and math.isfinite(result.reference_ms)
    with pytest.raises(ValueError, match="wall clock"):
        summarise(np.array([np.nan, np.nan]), np.array([np.nan, np.nan]))
