"""latency.transfer: a predictor's figures mapped to another platform from a few measurements."""
from __future__ import annotations

import math

import numpy as np
import pytest

from latency.transfer import MIN_LOGLINEAR, Transfer, choose_transfer, fit_transfer, leave_one_out_error

SOURCE = np.array([0.10, 0.15, 0.22, 0.31, 0.45, 0.60])


def test_scale_recovers_a_constant_factor():
    fitted = fit_transfer(SOURCE, 1.7 * SOURCE, "scale")
    assert fitted.slope == 1.0 and math.exp(fitted.intercept) == pytest.approx(1.7)
    assert fitted.predict([0.8]) == pytest.approx([1.36])


def test_loglinear_recovers_a_power_law():
    fitted = fit_transfer(SOURCE, 0.9 * SOURCE ** 0.7, "loglinear")
    assert fitted.slope == pytest.approx(0.7) and math.exp(fitted.intercept) == pytest.approx(0.9)


def test_choice_follows_the_leave_one_out_error():
    bent = choose_transfer(SOURCE, 0.9 * SOURCE ** 0.6)
    assert bent.method == "loglinear" and bent.loo_abs_err_pct == pytest.approx(0.0, abs=1e-9)
    wobble = np.array([1.02, 0.97, 1.01, 0.99, 1.03, 0.98])  # a constant factor with noise
    flat = choose_transfer(SOURCE, 2.0 * SOURCE * wobble)
    assert flat.method == "scale"
    assert flat.loo_abs_err_pct == pytest.approx(leave_one_out_error(SOURCE, 2.0 * SOURCE * wobble, "scale"))


def test_too_few_specs_for_two_parameters_take_the_scale():
    few = SOURCE[:MIN_LOGLINEAR - 1]
    assert choose_transfer(few, few ** 0.5).method == "scale"
    assert choose_transfer(SOURCE[:1], [0.3]).predict([0.1]) == pytest.approx([0.3])


@pytest.mark.parametrize("source, target, message", [
    ([0.1, -0.2], [0.1, 0.2], "source predictions must be"),
    ([0.1, 0.2], [0.1, float("nan")], "target measurements must be"),
    ([0.1, 0.2], [0.1], "2 source predictions but 1 target"),
])
def test_bad_figures_are_refused_naming_them(source, target, message):
    with pytest.raises(ValueError, match=message):
        fit_transfer(source, target)


def test_a_transfer_round_trips_and_an_unknown_method_is_refused():
    fitted = choose_transfer(SOURCE, 0.9 * SOURCE ** 0.6)
    assert Transfer.from_dict(fitted.to_dict()) == fitted
    with pytest.raises(ValueError, match="transfer method 'cubic' is not known"):
        Transfer.from_dict({**fitted.to_dict(), "method": "cubic"})
    with pytest.raises(ValueError, match="transfer method 'cubic' is not known"):
        fit_transfer(SOURCE, SOURCE, "cubic")


def counts(rows: int, seed: int = 0) -> np.ndarray:
    from latency.transfer import ADDITIVE_FEATURES

    return np.random.default_rng(seed).uniform(1, 20, size=(rows, len(ADDITIVE_FEATURES)))


def test_additive_follows_a_cost_per_count_that_reorders_models():
    from latency.transfer import ADDITIVE_FEATURES

    rng = np.random.default_rng(1)
    source = rng.uniform(0.1, 0.6, size=40)
    features = counts(40)
    target = 0.6 * source + 0.02 * features[:, 0] + 0.005 * features[:, 4]  # a cost per layer and per SE block
    fitted = choose_transfer(source, target, features)
    assert fitted.method == "additive" and len(fitted.weights) == len(ADDITIVE_FEATURES)
    new_source, new_features = rng.uniform(0.1, 0.6, size=10), counts(10, seed=2)
    expected = 0.6 * new_source + 0.02 * new_features[:, 0] + 0.005 * new_features[:, 4]
    assert fitted.predict(new_source, new_features) == pytest.approx(expected, rel=0.03)
    assert choose_transfer(source, target).method != "additive"  # without features it is not tried
    assert Transfer.from_dict(fitted.to_dict()) == fitted


def test_an_additive_transfer_needs_its_features_and_this_versions_columns():
    rng = np.random.default_rng(3)
    source, features = rng.uniform(0.1, 0.6, size=12), counts(12)
    fitted = fit_transfer(source, source + 0.01 * features[:, 0], "additive", features)
    with pytest.raises(ValueError, match="needs the specs' features"):
        fitted.predict(source)
    with pytest.raises(ValueError, match="features must be 12 x"):
        fitted.predict(source, features[:, :3])
    with pytest.raises(ValueError, match="fit it again"):
        Transfer.from_dict({**fitted.to_dict(), "features": ["n_layers"]})


def _layer_frame(rows: int, seed: int) -> "pd.DataFrame":
    """Transfer features of made-up specs: two layer kinds' table times and the other columns."""
    import pandas as pd

    from latency.transfer import ADDITIVE_FEATURES, LEVEL_FEATURES

    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.uniform(1, 20, size=(rows, len(LEVEL_FEATURES) + len(ADDITIVE_FEATURES))),
                         columns=[*LEVEL_FEATURES, *ADDITIVE_FEATURES])
    frame["kind_ms_stem"] = rng.uniform(0.01, 0.05, size=rows)
    frame["kind_ms_bneck_se1_hswish"] = rng.uniform(0.05, 0.5, size=rows)
    return frame


def test_layers_reweights_the_tables_time_per_layer_kind():
    """int8-like: the stem runs at 0.3x, SE blocks at 1.5x; no map of the sum follows that."""
    from latency.transfer import ADDITIVE_FEATURES

    frame = _layer_frame(40, seed=4)
    source = frame["kind_ms_stem"] + frame["kind_ms_bneck_se1_hswish"]
    target = 0.3 * frame["kind_ms_stem"] + 1.5 * frame["kind_ms_bneck_se1_hswish"]
    fitted = choose_transfer(source.to_numpy(), target.to_numpy(), frame)
    assert fitted.method == "layers" and "kind_ms_bneck_se1_hswish" in fitted.features
    new = _layer_frame(10, seed=5)
    expected = 0.3 * new["kind_ms_stem"] + 1.5 * new["kind_ms_bneck_se1_hswish"]
    predicted = fitted.predict((new["kind_ms_stem"] + new["kind_ms_bneck_se1_hswish"]).to_numpy(), new)
    assert predicted == pytest.approx(expected.to_numpy(), rel=0.03)
    assert Transfer.from_dict(fitted.to_dict()) == fitted
    counts_only = frame[list(ADDITIVE_FEATURES)].to_numpy()  # an array of the counts: no layer kinds by name
    assert choose_transfer(source.to_numpy(), target.to_numpy(), counts_only).method != "layers"


def test_a_layer_kind_the_new_specs_lack_counts_zero_and_unknown_columns_are_refused():
    frame = _layer_frame(20, seed=6)
    source = (frame["kind_ms_stem"] + frame["kind_ms_bneck_se1_hswish"]).to_numpy()
    fitted = fit_transfer(source, 2.0 * source, "layers", frame)
    without = frame.drop(columns=["kind_ms_stem"])
    assert fitted.predict(source, without) == pytest.approx(
        fitted.predict(source, frame.assign(kind_ms_stem=0.0)))
    with pytest.raises(ValueError, match=r"features lack the columns \['n_layers'\]"):
        fitted.predict(source, frame.drop(columns=["n_layers"]))
    with pytest.raises(ValueError, match="weighs the features \\['cache_magic'\\], which this version does not"):
        Transfer.from_dict({**fitted.to_dict(), "features": [*fitted.features[:-1], "cache_magic"]})


def _operator_frame(rows: int, seed: int) -> "pd.DataFrame":
    """Transfer features of made-up specs: operator, kernel and additive counts."""
    import pandas as pd

    from latency.transfer import ADDITIVE_FEATURES, KERNEL_FEATURES

    rng = np.random.default_rng(seed)
    names = ["op_Conv2d", "op_BatchNorm2d", "op_Hardswish", *KERNEL_FEATURES, *ADDITIVE_FEATURES]
    return pd.DataFrame(rng.integers(1, 60, size=(rows, len(names))).astype(float), columns=names)


def test_operators_follows_a_cost_per_launched_convolution():
    """int8-like: a quantize/dequantize pair around every convolution costs a fixed time."""
    frame = _operator_frame(40, seed=7)
    rng = np.random.default_rng(8)
    source = rng.uniform(0.1, 0.6, size=40)
    target = 0.7 * source + 0.004 * frame["op_Conv2d"].to_numpy()
    fitted = choose_transfer(source, target, frame)
    assert fitted.method == "operators" and "op_Conv2d" in fitted.features
    new, new_source = _operator_frame(10, seed=9), rng.uniform(0.1, 0.6, size=10)
    expected = 0.7 * new_source + 0.004 * new["op_Conv2d"].to_numpy()
    assert fitted.predict(new_source, new) == pytest.approx(expected, rel=0.03)
    assert Transfer.from_dict(fitted.to_dict()) == fitted
    assert fitted.predict(new_source, new.drop(columns=["op_Hardswish"])) == pytest.approx(
        fitted.predict(new_source, new.assign(op_Hardswish=0.0)))  # an operator the new specs lack counts 0


def test_operators_counts_each_specs_error_relative_to_its_own_figure():
    """One large model measured 20% off (as a slow moment would) moves the small models' fit
    less than a fit on absolute error (``additive``, the same cost column) lets it."""
    from latency.transfer import ADDITIVE_FEATURES

    frame = _operator_frame(30, seed=10)
    rng = np.random.default_rng(11)
    source = np.concatenate([rng.uniform(0.1, 0.2, size=29), [5.0]])
    target = 0.8 * source + 0.002 * frame["n_layers"].to_numpy()
    target[-1] *= 1.2
    counts_only = frame[list(ADDITIVE_FEATURES)].to_numpy()
    relative = fit_transfer(source, target, "operators", frame).predict(source, frame)
    absolute = fit_transfer(source, target, "additive", counts_only).predict(source, counts_only)
    small_error = lambda predicted: float(np.median(np.abs(predicted[:29] / target[:29] - 1)))
    assert small_error(relative) < 0.01 < small_error(absolute)
