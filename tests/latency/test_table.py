"""Table building: resume after a kill, fingerprint checks, missing keys, calibrated prediction."""
from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from latency.build import BuildConfig, TableBuilder
from latency.calibration import apply_calibration, spec_features
from latency.keys import space_keys, spec_keys
from latency.learning import table_specs
from latency.predictor import LatencyPredictor
from latency.table import (CALIBRATION_COLUMNS, CALIBRATION_FILE, ENTRIES_FILE, MANIFEST_FILE, REFERENCE_FILE,
                           MissingKeyError,
                           TableMismatchError, calibration_specs, load_table)
from latency.validation import sample_specs
from search_spaces.encoding import format_spec
from search_spaces.mnasnet_space import MnasNetSpace

SPACE = MnasNetSpace(resolution=32)


class Killed(Exception):
    pass


def _builder(folder, measurer, **kwargs):
    reference = sample_specs(SPACE, 1, seed=99)[0]
    config = BuildConfig(batch_keys=4, calibration_group=3, calibration_rounds=1)
    return TableBuilder(folder, measurer, reference, space="mnasnet", config=config, **kwargs)


def test_build_killed_mid_way_resumes_losing_nothing(tmp_path, fake_measurer):
    keys = space_keys(SPACE)[:14]

    def kill_after_two_batches(phase, done, total):
        if phase == "layers" and done >= 8:
            raise Killed

    with pytest.raises(Killed):
        _builder(tmp_path, fake_measurer, progress=kill_after_two_batches).measure_keys(keys)
    saved = pd.read_csv(tmp_path / ENTRIES_FILE)
    assert len(saved) == 8
    measured_again = _builder(tmp_path, fake_measurer).measure_keys(keys)
    assert measured_again == 6
    final = pd.read_csv(tmp_path / ENTRIES_FILE)
    assert len(final) == 14
    pd.testing.assert_frame_equal(final.iloc[:8].reset_index(drop=True), saved)
    builder = _builder(tmp_path, fake_measurer)
    assert builder.measured_keys() == set(keys)
    assert builder.measure_keys(keys) == 0


def test_torn_last_line_is_dropped_and_remeasured(tmp_path, fake_measurer):
    keys = space_keys(SPACE)[:4]
    _builder(tmp_path, fake_measurer).measure_keys(keys)
    path = tmp_path / ENTRIES_FILE
    path.write_text(path.read_text()[:-30])  # killed mid-write
    assert _builder(tmp_path, fake_measurer).measure_keys(keys) == 1


@pytest.fixture(scope="module")
def lazy_table(tmp_path_factory):
    """A lazily built table: the layers and whole models of 7 calibration specs."""
    from tests.latency.fakes import FakeMeasurer

    folder = tmp_path_factory.mktemp("lazy")
    specs = sample_specs(SPACE, 7, seed=0)
    builder = _builder(folder, FakeMeasurer())
    builder.measure_calibration(specs)
    return builder.finish(), specs


def test_prediction_is_the_table_sum_plus_calibration(lazy_table):
    table, specs = lazy_table
    tmp_path = table.folder
    calibration = table.calibration(32)
    predictor = LatencyPredictor(load_table(tmp_path))
    for spec in specs:
        features = spec_features(table, spec_keys(spec))
        expected = calibration["intercept_ms"] + sum(c * features[n] for n, c in zip(calibration["features"], calibration["coef"]))
        assert predictor.predict_ms(spec) == pytest.approx(expected)
        assert features["sum_ms"] == pytest.approx(sum(table.lookup(k) for k in spec_keys(spec)))
    overhead_only = {"features": ["sum_ms"], "coef": [1.0], "intercept_ms": 0.25}
    assert apply_calibration(overhead_only, {"sum_ms": 2.0}) == pytest.approx(2.25)


def test_missing_key_raises_naming_the_layer(lazy_table):
    predictor = LatencyPredictor(load_table(lazy_table[0].folder))
    other = next(s for s in sample_specs(SPACE, 50, seed=5) if not set(spec_keys(s)) <= set(predictor.table.keys()))
    with pytest.raises(MissingKeyError, match="is not in the table"):
        predictor.predict_ms(other)
    with pytest.raises(MissingKeyError, match="calibrated resolutions: \\[32\\]"):
        predictor.predict_ms(sample_specs(MnasNetSpace(resolution=64), 1, seed=0)[0])


def test_table_from_other_hardware_fails_naming_the_difference(tmp_path, fake_measurer):
    _builder(tmp_path, fake_measurer).measure_keys(space_keys(SPACE)[:2])
    manifest = json.loads((tmp_path / MANIFEST_FILE).read_text())
    manifest["fingerprint"]["cpu_model"] = "Snapdragon 855"
    (tmp_path / MANIFEST_FILE).write_text(json.dumps(manifest))
    with pytest.raises(TableMismatchError, match="cpu_model: table 'Snapdragon 855'"):
        load_table(tmp_path)
    assert len(load_table(tmp_path, force=True)) == 2


def test_resuming_with_other_settings_fails_unless_forced(tmp_path, fake_measurer):
    from tests.latency.fakes import FakeMeasurer

    _builder(tmp_path, fake_measurer).measure_keys(space_keys(SPACE)[:2])
    with pytest.raises(TableMismatchError, match="setting repeats: table 5, here 9"):
        _builder(tmp_path, FakeMeasurer(repeats=9))
    _builder(tmp_path, FakeMeasurer(repeats=9), force=True)


def test_reference_slow_period_is_normalised_out(tmp_path, fake_measurer):
    reference = sample_specs(SPACE, 1, seed=99)[0]
    TableBuilder(tmp_path, fake_measurer, reference, space="mnasnet",
                 config=BuildConfig(batch_keys=4, normalise_entries=True)).measure_keys(space_keys(SPACE)[:4])
    raw = pd.read_csv(tmp_path / ENTRIES_FILE)
    raw["ref_ms"] = raw["ref_ms"] * 2  # as if the batch ran in a period twice as slow
    raw.to_csv(tmp_path / ENTRIES_FILE, index=False)
    builder = _builder(tmp_path, fake_measurer)
    table = builder.finish()
    ratio = table.entries["median_ms"] / table.entries["raw_median_ms"]
    assert np.allclose(ratio, table.reference_baseline_ms / raw["ref_ms"])


def test_raw_entries_when_the_build_does_not_normalise(tmp_path, fake_measurer):
    reference = sample_specs(SPACE, 1, seed=99)[0]
    config = BuildConfig(batch_keys=4, normalise_entries=False)
    builder = TableBuilder(tmp_path, fake_measurer, reference, space="mnasnet", config=config)
    builder.measure_keys(space_keys(SPACE)[:4])
    raw = pd.read_csv(tmp_path / ENTRIES_FILE)
    raw["ref_ms"] = raw["ref_ms"] * 2
    raw.to_csv(tmp_path / ENTRIES_FILE, index=False)
    table = builder.finish()
    assert np.allclose(table.entries["median_ms"], table.entries["raw_median_ms"])
    assert np.allclose(load_table(tmp_path).entries["median_ms"], raw["raw_median_ms"])


def test_calibration_rows_are_recognised_in_either_spelling(tmp_path):
    space = MnasNetSpace(resolution=32, num_classes=10, in_channels=1)
    specs = sample_specs(space, 4, seed=0)
    texts = [format_spec(s) for s in specs]
    texts[:2] = [re.sub(r"(ir_k\d+_s\d+_)h(\d+_c)", r"\g<1>e\2", t) for t in texts[:2]]
    assert any("_e" in t for t in texts[:2])
    rows = [{"resolution": 32, "spec": t, "measured_ms": 1.0, "raw_ms": 1.0, "ref_ratio": 1.0, "rounds": 2,
             "baseline_ms": 1.0} for t in texts]
    pd.DataFrame(rows, columns=list(CALIBRATION_COLUMNS)).to_csv(tmp_path / CALIBRATION_FILE, index=False)
    assert calibration_specs(tmp_path) == set(specs)
    assert table_specs(tmp_path) == {format_spec(s) for s in specs}


def test_completing_a_finished_table_keeps_its_unit(tmp_path, fake_measurer):
    """A lazy table completed by a later build (or given another resolution) keeps the baseline
    it was finished with: its entries, calibration and any predictor fitted on it stay valid."""
    specs = sample_specs(SPACE, 4, seed=0)
    builder = _builder(tmp_path, fake_measurer)
    builder.measure_calibration(specs)
    first = builder.finish()
    before = first.entries["median_ms"]
    history = pd.read_csv(tmp_path / REFERENCE_FILE)
    history["ref_ms"] *= 1.5  # as if the reference's blocks so far had run in a slower period
    history.to_csv(tmp_path / REFERENCE_FILE, index=False)
    resumed = _builder(tmp_path, fake_measurer)
    assert resumed.measure_keys(space_keys(SPACE)[:40]) > 0  # keys the calibration specs did not have
    assert resumed.baseline_ms() != pytest.approx(first.reference_baseline_ms)  # the median moved
    second = resumed.finish()
    assert second.reference_baseline_ms == first.reference_baseline_ms
    pd.testing.assert_series_equal(second.entries["median_ms"].iloc[:len(before)], before)  # rows are appended
    assert second.manifest["calibration"] == first.manifest["calibration"]
