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


def _begun_table(folder, config: BuildConfig) -> TableBuilder:
    reference = sample_specs(SPACE, 1, seed=99)[0]
    return TableBuilder(folder, OrtMeasurer(OrtSettings(warmup=1, repeats=3)), reference, space="mnasnet", config=config)


def test_a_resumed_table_is_measured_with_its_recorded_settings(tmp_path, machine, monkeypatch):
    _begun_table(tmp_path, BuildConfig(reference_block=3, key_pairs=2, max_passes=1, batch_keys=7))
    blocks: list[int] = []
    monkeypatch.setattr(TableBuilder, "_reference_runner",
                        lambda self: lambda runs: blocks.append(runs) or machine.block(REF_MS, runs))
    resumed = _begun_table(tmp_path, BuildConfig(batch_keys=1))  # the code's defaults, another schedule
    assert resumed.measure_keys(space_keys(SPACE)[:1]) == 1
    assert blocks == [3, 3]  # two pairs, each with one reference block of the recorded 3 runs
    assert resumed.config.batch_keys == 1 and resumed.config.key_pairs == 2


def test_a_table_that_did_not_record_its_reference_block_keeps_the_old_default(tmp_path):
    import json

    _begun_table(tmp_path, BuildConfig())
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    del manifest["build"]["reference_block"]
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    assert _begun_table(tmp_path, BuildConfig(reference_block=2)).config.reference_block == key_timing.UNRECORDED["reference_block"]


def test_a_corrupt_recorded_setting_is_refused_naming_it(tmp_path):
    import json

    from storage.statefiles import StateFileError

    _begun_table(tmp_path, BuildConfig())
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    manifest["build"]["key_pairs"] = "eight"
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(StateFileError, match="build.key_pairs = 'eight'"):
        _begun_table(tmp_path, BuildConfig())


@pytest.mark.parametrize("reference_ms, runs", [(3.9, 1), (1.0, 2), (0.35, 5), (0.1, 15)])
def test_a_new_table_sizes_its_reference_blocks_by_the_reference_run_time(tmp_path, monkeypatch, reference_ms, runs):
    monkeypatch.setattr(TableBuilder, "_reference_runner", lambda self: lambda k: np.full(k, reference_ms))
    builder = _begun_table(tmp_path, BuildConfig())
    assert builder.config.reference_block == runs
    assert builder.manifest["build"]["reference_block"] == runs  # recorded, so a resumed table keeps it


def test_a_measurer_without_a_session_keeps_the_fixed_reference_block(tmp_path, fake_measurer):
    reference = sample_specs(SPACE, 1, seed=99)[0]
    builder = TableBuilder(tmp_path, fake_measurer, reference, space="mnasnet")
    assert builder.manifest["build"]["reference_block"] == key_timing.FIXED_REFERENCE_BLOCK


def test_a_reference_that_reads_zero_cannot_size_its_blocks():
    with pytest.raises(ValueError, match="clock"):
        key_timing.reference_block_runs(float("nan"))
