"""Layer keys timed interleaved with the reference: a change of machine speed cancels in the ratio."""
from __future__ import annotations

import numpy as np
import pytest

import latency.key_timing as key_timing
from latency.build import TableBuilder
from latency.key_timing import BuildConfig, measure_key
from latency.keys import space_keys
from latency.measurers import OrtMeasurer, OrtSettings
from latency.validation import sample_specs
from search_spaces.mnasnet_space import MnasNetSpace

SPACE = MnasNetSpace(resolution=32)
KEY_MS, COLD_MS, REF_MS = 0.2, 0.3, 1.0


class Machine:
    """A machine whose speed flips between 1x and 2.5x every ``period`` timed blocks."""

    def __init__(self, period: int) -> None:
        self.period, self.blocks = period, 0

    def block(self, ms: float, runs: int) -> np.ndarray:
        slow = 2.5 if (self.blocks // self.period) % 2 else 1.0
        self.blocks += 1
        return np.full(runs, ms * slow)


class FakeRoundRobin:
    copies = 2

    def __init__(self, machine: Machine) -> None:
        self.machine = machine

    def run_warm(self, repeats: int, warmup: int = 0) -> np.ndarray:
        return self.machine.block(KEY_MS, repeats)

    def run_cold(self, rounds: int, warmup_rounds: int = 1) -> np.ndarray:
        return self.machine.block(COLD_MS, rounds * self.copies)


@pytest.fixture
def machine(monkeypatch) -> Machine:
    machine = Machine(period=5)
    monkeypatch.setattr(key_timing, "_round_robin", lambda measurer, key, config: FakeRoundRobin(machine))
    return machine


def test_interleaved_ratio_cancels_a_speed_change_between_blocks(machine):
    key = space_keys(SPACE)[0]
    reference = lambda runs: machine.block(REF_MS, runs)  # noqa: E731 - a block runner
    row = measure_key(OrtMeasurer(OrtSettings(warmup=0)), key, BuildConfig(key_pairs=8, max_passes=1), reference)
    in_reference_units = row["raw_median_ms"] / row["ref_ms"], row["raw_cold_median_ms"] / row["ref_ms"]
    # the speed flips within some pairs, so single ratios are off, but the median of pairs holds
    assert in_reference_units == pytest.approx((KEY_MS / REF_MS, COLD_MS / REF_MS))
    assert row["n"] == 8 and row["cold_n"] == 8


def test_a_spread_of_pair_ratios_measures_more_passes(machine):
    key = space_keys(SPACE)[0]
    reference = lambda runs: machine.block(REF_MS, runs)  # noqa: E731
    machine.period = 1  # every block flips: half the pairs read 2.5x off, the spread stays wide
    row = measure_key(OrtMeasurer(OrtSettings(warmup=0)), key, BuildConfig(key_pairs=4, max_passes=3), reference)
    assert row["n"] == 12


def test_builder_interleaves_on_onnx_runtime_and_brackets_elsewhere(tmp_path, fake_measurer):
    reference = sample_specs(SPACE, 1, seed=99)[0]
    ort = TableBuilder(tmp_path / "ort", OrtMeasurer(OrtSettings(warmup=1, repeats=3)), reference, space="mnasnet",
                       config=BuildConfig(key_pairs=2, max_passes=1))
    assert ort.manifest["build"]["key_timing"] == "interleaved"
    assert ort.measure_keys(space_keys(SPACE)[:2]) == 2
    rows = ort.measured_keys()
    assert len(rows) == 2 and len(ort.history_ms) == 2  # one reference median per key, recorded
    other = TableBuilder(tmp_path / "fake", fake_measurer, reference, space="mnasnet")
    assert other.manifest["build"]["key_timing"] == "bracketed"


def test_unknown_key_timing_is_refused_naming_the_setting():
    with pytest.raises(ValueError, match="build.key_timing = 'sometimes'"):
        BuildConfig(key_timing="sometimes")
