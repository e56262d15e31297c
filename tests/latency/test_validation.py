"""Validation metrics, spec sampling and the report files."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from latency.calibration import fit_calibration, loo_abs_err_pct
from latency.validation import error_metrics, sample_specs, spearman, write_report
from search_spaces.encoding import format_spec
from search_spaces.mnasnet_space import MnasNetSpace


def test_error_metrics_on_known_values():
    metrics = error_metrics([1.04, 2.18, 2.75, 4.0], [1.0, 2.0, 3.0, 4.0])
    assert metrics["n"] == 4
    assert metrics["within_5pct"] == pytest.approx(0.5) and metrics["within_10pct"] == pytest.approx(1.0)
    assert metrics["mean_abs_err_pct"] == pytest.approx((4 + 9 + 25 / 3 + 0) / 4)
    assert metrics["spearman"] == pytest.approx(1.0)


def test_spearman_is_rank_based():
    assert spearman([1, 2, 3], [10, 100, 1000]) == pytest.approx(1.0)
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)


def test_sampled_specs_are_distinct_seeded_and_exclude_given_ones():
    space = MnasNetSpace(resolution=32)
    first = sample_specs(space, 5, seed=3)
    assert [format_spec(s) for s in first] == [format_spec(s) for s in sample_specs(space, 5, seed=3)]
    excluded = {format_spec(first[0])}
    assert format_spec(first[0]) not in {format_spec(s) for s in sample_specs(space, 5, seed=3, exclude=excluded)}


def test_calibration_recovers_a_linear_relation_and_prefers_the_simple_model():
    rng = np.random.default_rng(0)
    features = [{"sum_ms": s, "cold_sum_ms": s * c, "n_layers": n, "params_m": p, "madds_m": m, "act_m": p * c, "sum_ms_sq": s * s}
                for s, c, n, p, m in zip(rng.uniform(1, 3, 20), rng.uniform(1.0, 1.3, 20), rng.integers(15, 25, 20),
                                         rng.uniform(3, 8, 20), rng.uniform(10, 90, 20))]
    measured = [1.1 * f["sum_ms"] + 0.2 for f in features]
    calibration = fit_calibration(features, measured)
    assert calibration["features"] == ["sum_ms"]
    assert calibration["coef"][0] == pytest.approx(1.1) and calibration["intercept_ms"] == pytest.approx(0.2)
    assert calibration["loo"]["sum_ms"] == pytest.approx(0.0, abs=1e-9)


def test_few_calibration_specs_fit_only_an_overhead():
    calibration = fit_calibration([{"sum_ms": 1.0}, {"sum_ms": 2.0}], [1.3, 2.3])
    assert calibration["coef"] == [1.0] and calibration["intercept_ms"] == pytest.approx(0.3)


def test_loo_errors_are_zero_on_exact_data():
    x = np.c_[np.arange(1.0, 9.0), np.ones(8)]
    assert np.allclose(loo_abs_err_pct(x, 2 * x[:, 0] + 1), 0)


def test_report_files_are_written(tmp_path):
    frame = pd.DataFrame({"predicted_ms": [1.0, 2.0, 3.1], "measured_ms": [1.0, 2.1, 3.0]})
    report = error_metrics(frame["predicted_ms"], frame["measured_ms"])
    path = write_report(tmp_path, report, frame)
    assert json.loads(path.read_text())["n"] == 3
    assert (tmp_path / "validation.png").stat().st_size > 1000 and (tmp_path / "validation.csv").exists()


def test_every_spec_is_measured_alike_and_the_noise_floor_is_reported(probed_table):
    from latency.predictor import LatencyPredictor
    from latency.table import load_table
    from latency.validation import ValidationConfig, validate
    from tests.latency.fakes import FakeMeasurer, probed_specs

    measurer, specs = FakeMeasurer(), probed_specs()
    config = ValidationConfig(n=1, pairs=3, passes=2)
    report, frame = validate(LatencyPredictor(load_table(probed_table)), measurer, specs, config)
    # per pass and pair: the reference and the spec, one call each; no extra pairs however far off the prediction is
    assert measurer.calls == config.passes * config.pairs * 2
    assert report["pairs_per_pass"] == 3 and len(report["per_pass"]) == 2 and "pass2_ms" in frame
    floor = report["noise_floor"]
    assert floor["measured"]["within_5pct"] == 1.0 and floor["measured"]["mean_abs_err_pct"] == pytest.approx(0, abs=1e-9)
    ratio = frame["pass1_ms"][0] / load_table(probed_table).reference_baseline_ms  # in the table's units
    assert frame["measured_ms"][0] == pytest.approx(ratio * load_table(probed_table).reference_baseline_ms)
    assert report["measured_as"].startswith("paired ratio")


def test_noise_floor_compares_the_two_passes():
    from latency.validation import noise_floor

    floor = noise_floor([[1.0, 2.0], [1.08, 2.0]])
    assert floor["measured"]["within_5pct"] == 0.5 and floor["measured"]["within_10pct"] == 1.0
    assert noise_floor([[1.0, 2.0]]) == {}


def test_calibration_never_chooses_a_negative_cost_coefficient_but_per_layer():
    rng = np.random.default_rng(1)
    sums, layers = rng.uniform(1, 3, 12), rng.integers(15, 25, 12).astype(float)
    params = rng.uniform(2, 6, 12)
    features = [{"sum_ms": s, "cold_sum_ms": s * 1.1, "n_layers": n, "params_m": p, "madds_m": 1.0,
                 "act_m": 1.0, "sum_ms_sq": s * s} for s, n, p in zip(sums, layers, params)]
    measured = [2.0 * s - 0.1 * p for s, p in zip(sums, params)]  # exact with a negative params_m coefficient
    calibration = fit_calibration(features, measured)
    assert "sum_ms+params_m" not in calibration["loo"]
    assert all(c >= 0 for n, c in zip(calibration["features"], calibration["coef"]) if n != "n_layers")
    per_call = [2.0 * s - 0.01 * n for s, n in zip(sums, layers)]  # isolated layers each pay a call overhead
    calibration = fit_calibration(features, per_call)
    assert calibration["features"] == ["sum_ms", "n_layers"] and calibration["coef"][1] == pytest.approx(-0.01)


def test_rescore_recomputes_predictions_against_the_stored_measurements(probed_table, tmp_path):
    from latency.predictor import LatencyPredictor
    from latency.table import load_table
    from latency.validation import ValidationConfig, rescore, validate
    from tests.latency.fakes import FakeMeasurer, copy_table, probed_specs

    folder = copy_table(probed_table, tmp_path / "t")
    table = load_table(folder)
    report, frame = validate(LatencyPredictor(table), FakeMeasurer(), probed_specs(), ValidationConfig(n=1, pairs=2))
    write_report(folder, report, frame)
    table.manifest["calibration"]["32"] = {"features": ["sum_ms"], "coef": [2.0], "intercept_ms": 0.0, "n_specs": 0, "loo": {}}
    again, rescored = rescore(folder, LatencyPredictor(table))
    assert rescored["measured_ms"].tolist() == frame["measured_ms"].tolist()
    assert rescored["predicted_ms"][0] == pytest.approx(2 * LatencyPredictor(table).explain(probed_specs()[0]).sum_ms)
    assert again["noise_floor"]["measured"]["mean_abs_err_pct"] == report["noise_floor"]["measured"]["mean_abs_err_pct"]
    assert again["rescored_with"] == {"32": ["sum_ms"]}
