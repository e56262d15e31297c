"""Calibration: from the sum of table entries to a whole-model prediction.

The naive sum of isolated per-block medians misses the whole model by -6 to -7% at 224x224
and about -20% at 32x32 on a 2-core x86 VM: each isolated measurement pays
its own per-call overhead, while inside a network weights are evicted from the cache between
uses (see :mod:`latency.incontext`, whose cold medians the table also holds). A small linear
model over per-spec aggregates (warm sum, in-context sum, layer count, parameters, MAdds),
fitted by relative-error least squares against whole-model measurements of sampled specs
taken at build time, corrects the rest. The feature set is chosen among a few candidates by
leave-one-out error, so a table for other hardware picks what that hardware needs.
"""
from __future__ import annotations

import logging
from typing import Iterable, Protocol, Sequence

import numpy as np


from latency.keys import LayerKey, key_activations, key_cost

log = logging.getLogger(__name__)


class SummableTable(Protocol):
    """What a calibration reads of a table (:class:`latency.table.LatencyTable`)."""

    def keys_sum_ms(self, keys: Iterable[LayerKey], *, cold: bool = False) -> float: ...


FEATURES = ("sum_ms", "cold_sum_ms", "n_layers", "params_m", "madds_m", "act_m", "sum_ms_sq")
CANDIDATES = (("sum_ms",), ("cold_sum_ms",), ("sum_ms", "cold_sum_ms"), ("sum_ms", "n_layers"), ("cold_sum_ms", "n_layers"),
              ("sum_ms", "params_m"), ("cold_sum_ms", "params_m"), ("sum_ms", "cold_sum_ms", "n_layers"),
              ("sum_ms", "n_layers", "params_m", "madds_m"), ("sum_ms", "act_m"), ("cold_sum_ms", "act_m"),
              ("sum_ms", "cold_sum_ms", "act_m"), ("sum_ms", "params_m", "act_m"), ("cold_sum_ms", "params_m", "act_m"),
              ("sum_ms", "sum_ms_sq"), ("sum_ms", "sum_ms_sq", "n_layers"), ("cold_sum_ms", "sum_ms_sq", "n_layers"),
              ("sum_ms_sq", "n_layers"), ("sum_ms", "sum_ms_sq", "n_layers", "act_m"), ("sum_ms", "n_layers", "params_m"),
              ("sum_ms", "params_m", "sum_ms_sq"))
TIME_EXPONENT = {"sum_ms": 1, "cold_sum_ms": 1, "sum_ms_sq": 2}
"""Features measured in ms (exponent 1) or ms^2; the rest (counts, sizes) are not times."""
MAY_BE_NEGATIVE = ("n_layers",)
"""Each isolated layer pays its own per-call overhead, which the whole model does not."""


def spec_features(table: SummableTable, keys: Sequence[LayerKey]) -> dict[str, float]:
    """Per-spec aggregates the calibration may use (warm and in-context table sums, layers,
    params, MAdds, activation elements read and written, the squared warm sum).

    The squared sum lets the calibration bend: on a machine shared with other jobs, whole
    models can slow down more than in proportion to their size, since a large model's weights
    and activations compete with the other jobs for the shared caches."""
    params, madds = zip(*(key_cost(k) for k in keys))
    return {"sum_ms": table.keys_sum_ms(keys), "cold_sum_ms": table.keys_sum_ms(keys, cold=True), "n_layers": float(len(keys)),
            "params_m": sum(params) / 1e6, "madds_m": sum(madds) / 1e6, "act_m": sum(map(key_activations, keys)) / 1e6,
            "sum_ms_sq": table.keys_sum_ms(keys) ** 2}


def _design(features: Sequence[dict[str, float]], names: Sequence[str]) -> np.ndarray:
    return np.array([[f[n] for n in names] + [1.0] for f in features])


def _fit(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Least squares on relative error: rows weighted by 1 / measured. The intercept is a
    per-inference overhead, so it is never negative: a negative fitted intercept is refitted
    at zero (a negative one predicts near-zero or negative latency for models smaller than the
    calibration specs, e.g. MobileNetV3-Small against a lazy table's sampled specs)."""
    w = 1.0 / y
    coef, *_ = np.linalg.lstsq(x * w[:, None], y * w, rcond=None)
    if coef[-1] < 0:
        slopes, *_ = np.linalg.lstsq(x[:, :-1] * w[:, None], y * w, rcond=None)
        coef = np.append(slopes, 0.0)
    return coef


def loo_abs_err_pct(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Leave-one-out absolute percentage errors of the relative-error fit."""
    errs = np.empty(len(y))
    for i in range(len(y)):
        keep = np.arange(len(y)) != i
        errs[i] = abs(x[i] @ _fit(x[keep], y[keep]) / y[i] - 1.0) * 100
    return errs


def fit_calibration(features: Sequence[dict[str, float]], measured_ms: Sequence[float]) -> dict:
    """Choose and fit the calibration; returns a JSON-safe dict for the manifest.

    With fewer than 6 specs, or when every candidate needs a negative coefficient, only a
    per-inference overhead is fitted (``sum + c``).
    """
    y = np.asarray(measured_ms, dtype=float)
    if len(y) == 0:
        return {"features": ["sum_ms"], "coef": [1.0], "intercept_ms": 0.0, "n_specs": 0, "loo": {}}
    if len(y) < 6:
        return _overhead_only(features, y)
    loo = {}
    for names in CANDIDATES:
        x = _design(features, names)
        # features are costs: a negative coefficient (but a per-layer one) is an artefact of noisy
        # data and extrapolates badly (negative latency for small models), so it is not chosen
        coef = _fit(x, y)[:-1]
        if len(y) >= len(names) + 4 and all(c >= 0 or n in MAY_BE_NEGATIVE for n, c in zip(names, coef)):
            loo["+".join(names)] = float(np.mean(loo_abs_err_pct(x, y)))
    if not loo:
        return _overhead_only(features, y)
    best = min(loo, key=lambda name: (round(loo[name], 1), len(name)))  # ties (0.1%) go to the simpler model
    names = best.split("+")
    coef = _fit(_design(features, names), y)
    log.info("calibration %s: LOO mean abs err %.2f%% over %d specs", best, loo[best], len(y))
    return {"features": names, "coef": [float(c) for c in coef[:-1]], "intercept_ms": float(coef[-1]),
            "n_specs": int(len(y)), "loo": loo}


def _overhead_only(features: Sequence[dict[str, float]], y: np.ndarray) -> dict:
    """``sum + c``: the table sum plus the median per-inference overhead."""
    sums = np.array([f["sum_ms"] for f in features])
    return {"features": ["sum_ms"], "coef": [1.0], "intercept_ms": float(np.median(y - sums)), "n_specs": int(len(y)), "loo": {}}


def apply_calibration(calibration: dict, features: dict[str, float]) -> float:
    """``sum_i coef_i * feature_i + intercept_ms``."""
    value = calibration["intercept_ms"]
    for name, coef in zip(calibration["features"], calibration["coef"]):
        value += coef * features[name]
    return float(value)
