"""Opening a table: other hardware (fingerprint or signature) is refused with one line and
rescaled or forced on request; another speed alone is accepted and recorded (latency.drift)."""
from __future__ import annotations

import json

import pytest

from latency.build import TableBuilder
from latency.drift import DriftError, DriftReport, open_table, rescaled
from latency.measurers import OrtMeasurer, OrtSettings
from latency.predictor import LatencyPredictor
from latency.table import MANIFEST_FILE, TableMismatchError, load_table
from latency.validation import sample_specs
from search_spaces.encoding import parse_spec
from search_spaces.mnasnet_space import MnasNetSpace
from tests.latency.fakes import copy_table, probed_specs

SPACE = MnasNetSpace(resolution=32)
ORT = OrtMeasurer(OrtSettings(warmup=1, repeats=5))


def _copy(folder, tmp_path, edit=None):
    return copy_table(folder, tmp_path / "table", edit)


def _specs():
    return probed_specs()


def test_matching_table_opens_ok_and_predicts_as_loaded(probed_table):
    # a wide tolerance: this is about the fingerprint, and other jobs on the machine can slow the
    # probe against a baseline taken moments earlier (72% once, under a concurrent training run)
    table, report = open_table(probed_table, tolerance=9.0)
    assert report.action == "ok" and report.differences == () and report.ratio > 0
    plain = LatencyPredictor(load_table(probed_table))
    assert [LatencyPredictor(table).predict_ms(s) for s in _specs()] == [plain.predict_ms(s) for s in _specs()]


def _slower_baseline(manifest):
    manifest["reference"]["baseline_ms"] /= 3  # as if the table came from a moment 3x faster


def _other_signature(manifest):
    manifest["signature"]["ratios"] = {name: 3 * ratio for name, ratio in manifest["signature"]["ratios"].items()}


def test_another_speed_alone_is_accepted_and_recorded_as_the_speed_factor(probed_table, tmp_path):
    folder = _copy(probed_table, tmp_path, _slower_baseline)
    table, report = open_table(folder, tolerance=9.0)
    baseline = json.loads((folder / MANIFEST_FILE).read_text())["reference"]["baseline_ms"]
    assert report.action == "ok" and report.baseline_ms == baseline
    assert report.ratio == pytest.approx(report.measured_ms / baseline)
    assert table.manifest["drift"]["speed_factor"] == report.ratio
    plain = LatencyPredictor(load_table(folder))  # predictions stay in the table's units
    assert LatencyPredictor(table).predict_ms(_specs()[0]) == plain.predict_ms(_specs()[0])


def test_other_signature_is_refused_with_one_line_naming_it(probed_table, tmp_path):
    folder = _copy(probed_table, tmp_path, _other_signature)
    with pytest.raises(DriftError) as error:
        open_table(folder)
    message = str(error.value)
    assert len(message.splitlines()) == 1 and isinstance(error.value, TableMismatchError)
    assert "signature differs" in message and "mobilenetv3-large" in message
    assert "--rescale" in message and "--force" in message
    assert "mobilenas latency build --space mnasnet --resolution 32" in message


def test_rescale_multiplies_every_prediction_by_the_speed_factor(probed_table, tmp_path):
    folder = _copy(probed_table, tmp_path, _other_signature)
    table, report = open_table(folder, on_drift="rescale")
    assert report.action == "rescaled" and report.signature_error > report.tolerance
    assert table.manifest["drift"]["ratio"] == report.ratio
    plain = LatencyPredictor(load_table(folder))
    for spec in _specs():
        assert LatencyPredictor(table).predict_ms(spec) == pytest.approx(report.ratio * plain.predict_ms(spec), rel=1e-9)
    forced, report = open_table(folder, on_drift="force")
    assert report.action == "forced"
    assert LatencyPredictor(forced).predict_ms(_specs()[0]) == pytest.approx(plain.predict_ms(_specs()[0]))


def test_a_table_without_signature_opens_and_says_so(probed_table, tmp_path):
    folder = _copy(probed_table, tmp_path, lambda m: m.pop("signature"))
    _, report = open_table(folder)
    assert report.action == "ok" and report.signature_error is None
    assert "no signature recorded" in report.describe()


def test_edited_fingerprint_is_refused_then_rescaled_on_request(probed_table, tmp_path):
    folder = _copy(probed_table, tmp_path, lambda m: m["fingerprint"].update(cpu_stepping="99"))
    with pytest.raises(TableMismatchError) as error:
        open_table(folder, tolerance=0.5)
    assert len(str(error.value).splitlines()) == 1 and "cpu_stepping: table '99'" in str(error.value)
    assert "--rescale" in str(error.value)
    table, report = open_table(folder, tolerance=0.5, on_drift="rescale")
    assert report.action == "rescaled" and report.differences and "cpu_stepping" in report.differences[0]


def test_rescaled_scales_non_time_features_with_the_intercept(probed_table):
    table = load_table(probed_table)
    table.manifest["calibration"]["32"] = {"features": ["sum_ms", "params_m", "sum_ms_sq"], "coef": [1.1, 0.2, 0.7],
                                           "intercept_ms": 0.3,
                                           "n_specs": 2, "loo": {}}
    double = rescaled(table, 2.0)
    for spec in _specs():
        assert LatencyPredictor(double).predict_ms(spec) == pytest.approx(2 * LatencyPredictor(table).predict_ms(spec))
    with pytest.raises(ValueError, match="rescale ratio"):
        rescaled(table, 0.0)


@pytest.mark.parametrize("kwargs, message", [({"on_drift": "ignore"}, "on_drift = 'ignore'"),
                                             ({"tolerance": -0.1}, "drift tolerance = -0.1")])
def test_bad_options_are_rejected(probed_table, kwargs, message):
    with pytest.raises(ValueError, match=message):
        open_table(probed_table, **kwargs)


def test_report_is_json_safe():
    report = DriftReport(1.0, 1.2, 1.2, 0.1, "rescaled", ("cpu_family: table '6', here '26'",), 0.3, {"p": 1.5})
    assert json.loads(json.dumps(report.to_dict()))["differences"] == ["cpu_family: table '6', here '26'"]
    assert "speed 1.20x the build's" in report.describe() and "signature within 30.0%" in report.describe()


def test_unfinished_table_has_no_baseline(tmp_path):
    reference = sample_specs(SPACE, 1, seed=99)[0]
    TableBuilder(tmp_path, ORT, reference, space="mnasnet")
    with pytest.raises(ValueError, match="has no reference baseline"):
        open_table(tmp_path)
    assert parse_spec(json.loads((tmp_path / MANIFEST_FILE).read_text())["reference"]["spec"]) == reference


def test_a_table_this_run_made_is_never_refused_by_its_signature(probed_table, tmp_path):
    folder = _copy(probed_table, tmp_path, _other_signature)
    table, report = open_table(folder, trusted=True)
    assert report.action == "ok" and report.signature_error > report.tolerance and not report.differences
    assert table.manifest["drift"]["signature_error"] == report.signature_error
    edited = _copy(probed_table, tmp_path / "b", lambda m: m["fingerprint"].update(cpu_stepping="99"))
    with pytest.raises(TableMismatchError, match="cpu_stepping"):  # trust never covers other hardware ids
        open_table(edited, trusted=True)
