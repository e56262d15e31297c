"""The calibration's intercept is a per-inference overhead: never negative, so models smaller
than every calibration spec are not predicted at (near) zero latency."""
import numpy as np

from latency.calibration import apply_calibration, fit_calibration


def test_negative_intercept_is_refitted_at_zero():
    rng = np.random.default_rng(0)
    sums = rng.uniform(1.0, 2.0, size=12)
    measured = 1.5 * sums - 0.9 + rng.normal(0, 0.01, size=12)  # a fit with intercept would go negative
    features = [{"sum_ms": s, "cold_sum_ms": s, "n_layers": 20.0, "params_m": 1.0, "madds_m": 5.0, "act_m": 0.1,
                 "sum_ms_sq": s * s} for s in sums]
    calibration = fit_calibration(features, measured)
    assert calibration["intercept_ms"] >= 0.0
    assert all(apply_calibration(calibration, f) > 0.0 for f in features)


def test_lazy_tables_calibrate_on_small_hand_designed_anchors():
    from latency.lazy import ANCHOR_MODELS, anchor_specs
    from search_spaces.counting import spec_cost
    from search_spaces.mnasnet_space import MnasNetSpace

    anchors = anchor_specs(32, 1, 10)
    assert len(anchors) == len(ANCHOR_MODELS)
    assert all((s.resolution, s.in_channels, s.num_classes) == (32, 1, 10) for s in anchors)
    space = MnasNetSpace(resolution=32, in_channels=1, num_classes=10)
    sampled = [spec_cost(space.sample(np.random.default_rng(i))).madds for i in range(20)]
    assert min(spec_cost(s).madds for s in anchors) < min(sampled)  # they extend the range downwards
