"""The calibration's intercept is a per-inference overhead: never negative, so models smaller
than every calibration spec are not predicted at (near) zero latency."""
import numpy as np

from latency.calibration import apply_calibration, fit_calibration


def test_negative_intercept_is_refitted_at_zero():
    rng = np.random.default_rng(0)
    sums = rng.uniform(1.0, 2.0, size=12)
    measured = 1.5 * sums - 0.9 + rng.normal(0, 0.01, size=12)  # a fit with intercept would go negative
    features = [{"sum_ms": s, "cold_sum_ms": s, "n_layers": 20.0, "params_m": 1.0, "madds_m": 5.0, "act_m": 0.1}
                for s in sums]
    calibration = fit_calibration(features, measured)
    assert calibration["intercept_ms"] >= 0.0
    small = {**features[0], "sum_ms": 0.05, "cold_sum_ms": 0.05}
    assert apply_calibration(calibration, small) > 0.0
