"""A latency predictor carried to new hardware from a few measurements there.

LitePred (NSDI'24) adapts a predictor fitted on one device to another from a few hundred
measurements; nn-Meter refits per device. Here a predictor of the source platform (any
:class:`latency.predictors` model: calibrated table or learned) prices each spec, and a map
fitted on ``n`` specs measured on the target turns that figure into the target's: ``scale``
(one factor, the geometric mean of target/source) or ``loglinear`` (log target = a + b log
source: a platform whose large models gain more, e.g. 2 threads, or lose more, e.g. int8's
quantize/dequantize overhead on small convolutions, bends the line), or ``additive``
(nn-Meter's refit, kept to a few numbers: target = b + w x source + a ridge-regularised
weight per count of :data:`ADDITIVE_FEATURES`, which carries a cost per layer, per SE block,
per multiply-add that the new runtime adds or removes; int8's quantize/dequantize pairs are
such a cost, and they reorder models, which no map of the source figure can follow), or
``layers`` (the same with more columns: the source table's own time of each layer kind, stem,
head and each block type with and without SE by activation, and of each feature-map level; a
runtime that speeds some operators up and not others, int8's convolutions but not its SE or
hard-swish, re-weights the table's per-layer times, as LitePred and nn-Meter fit one model per
kernel type), or ``operators`` (target = slope x source + a weight per count of each runtime
operator the network launches, :mod:`latency.operator_counts`, per kernel size and per
:data:`ADDITIVE_FEATURES` column, fitted on relative error: the ratio target/source regressed on
those counts divided by the source figure, so a small model's 5% counts as much as a large one's;
a runtime's cost per launched operator, eager dispatch or int8's quantize/dequantize pair around
each convolution, is what it weighs). :func:`choose_transfer` picks by leave-one-out error on
the ``n`` specs. Every map is a few numbers stored as JSON with the names of the columns it weighs.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd

from latency.operator_counts import OPERATOR_PREFIX, operator_counts

TRANSFER_METHODS = ("scale", "loglinear", "additive", "layers", "operators")
MIN_LOGLINEAR = 4
"""Fewer specs than this: ``loglinear`` is not tried (two parameters need a check left over)."""
MIN_ADDITIVE = 8
"""Fewer specs than this: ``additive`` is not tried."""
ADDITIVE_FEATURES = ("n_layers", "madds_m", "params_m", "act_m", "n_se", "n_hswish", "n_bneck")
"""Counts of a spec (:mod:`latency.features`) the ``additive`` map weighs."""
LEVEL_FEATURES = tuple(f"L{level}_ms" for level in range(6))
"""The source table's time per feature-map level (:mod:`latency.features`), weighed by ``layers``."""
KIND_PREFIX = "kind_ms_"
"""Columns of the source table's time per layer kind (``kind_ms_stem``, ``kind_ms_bneck_se1_hswish``, ...)."""
MIN_LAYERS = 16
"""Fewer specs than this: ``layers`` and ``operators`` are not tried."""
KERNEL_FEATURES = ("n_k3", "n_k5", "n_k7")
"""Blocks by kernel size (:mod:`latency.features`), weighed by ``operators``."""
FEATURED_METHODS = ("additive", "layers", "operators")
"""The methods that weigh columns of :func:`transfer_features` (target = intercept + slope x
source + columns . weights)."""
RIDGE_ALPHAS = tuple(float(a) for a in np.logspace(-3, 3, 25))


@dataclass(frozen=True)
class Transfer:
    """``target = exp(intercept) x source ** slope``; ``slope`` is 1 for ``scale``. ``n``: specs
    it was fitted on; ``loo_abs_err_pct``: its leave-one-out mean absolute error on them."""

    method: str
    intercept: float
    slope: float
    n: int
    loo_abs_err_pct: float = math.nan
    weights: tuple[float, ...] = ()
    """The :data:`FEATURED_METHODS`: one weight per column of ``features`` (target = intercept +
    slope x source + features . weights)."""
    features: tuple[str, ...] = ()
    """The columns of :func:`transfer_features` the weights go with."""

    def __post_init__(self) -> None:
        if len(self.weights) != len(self.features):
            raise ValueError(f"a {self.method} transfer has {len(self.weights)} weights for {len(self.features)} "
                             "features: fit it again")

    def predict(self, source: Sequence[float], features: pd.DataFrame | np.ndarray | None = None) -> np.ndarray:
        """The target's figures for the source predictor's ``source`` figures (the
        :data:`FEATURED_METHODS`: and the specs' :func:`transfer_features`, one row per spec)."""
        values = _positive(source, "source predictions")
        if not self.features:
            return np.exp(self.intercept + self.slope * np.log(values))
        columns = _columns(features, values.size, self.features)
        return self.intercept + self.slope * values + columns @ np.asarray(self.weights)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "weights": list(self.weights), "features": list(self.features)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Transfer":
        if data.get("method") not in TRANSFER_METHODS:
            raise ValueError(f"transfer method {data.get('method')!r} is not known; expected one of {TRANSFER_METHODS}")
        names = tuple(str(n) for n in data.get("features", ()))
        unknown = [n for n in names if not _computable(n)]
        if unknown:
            raise ValueError(f"a {data['method']} transfer weighs the features {unknown}, which this version does "
                             "not compute: fit it again")
        return cls(str(data["method"]), float(data["intercept"]), float(data["slope"]), int(data["n"]),
                   float(data.get("loo_abs_err_pct", math.nan)), tuple(float(w) for w in data.get("weights", ())),
                   names)


def _computable(name: str) -> bool:
    from latency.features import FEATURE_NAMES

    return name in FEATURE_NAMES or name.startswith((KIND_PREFIX, OPERATOR_PREFIX))


def _columns(features: pd.DataFrame | np.ndarray | None, rows: int, names: Sequence[str]) -> np.ndarray:
    """``names`` of ``features`` as a ``rows x len(names)`` array: a frame of
    :func:`transfer_features` by name (a layer kind or operator none of its specs has counts 0), or an
    array whose columns are ``names`` in order."""
    if features is None:
        raise ValueError("this transfer needs the specs' features (transfer_features)")
    if isinstance(features, pd.DataFrame):
        missing = [n for n in names if n not in features.columns and not n.startswith((KIND_PREFIX, OPERATOR_PREFIX))]
        if missing:
            raise ValueError(f"features lack the columns {missing}")
        features = features.reindex(columns=list(names), fill_value=0.0)
    array = np.asarray(features, dtype=float)
    if array.shape != (rows, len(names)) or not np.all(np.isfinite(array)):
        raise ValueError(f"features must be {rows} x {len(names)} finite numbers, got shape {array.shape}")
    return array


def transfer_features(table: Any, specs: Sequence[Any]) -> pd.DataFrame:
    """One row per spec: every feature of :mod:`latency.features`, the source table's time per
    layer kind (:data:`KIND_PREFIX` columns, :func:`layer_kind`) and the spec's operator counts
    (:data:`OPERATOR_PREFIX` columns, :func:`operator_counts`)."""
    from latency.features import FEATURE_NAMES, feature_matrix
    from latency.keys import layer_kind, spec_keys

    frame = pd.DataFrame(feature_matrix(table, specs), columns=list(FEATURE_NAMES))
    kinds: list[dict[str, float]] = []
    for spec in specs:
        sums: dict[str, float] = {}
        for key in spec_keys(spec):
            name = KIND_PREFIX + layer_kind(key)
            sums[name] = sums.get(name, 0.0) + float(table.lookup(key))
        kinds.append(sums)
    operators = pd.DataFrame([operator_counts(spec) for spec in specs]).fillna(0.0)
    return pd.concat([frame, pd.DataFrame(kinds).fillna(0.0), operators], axis=1)


def method_features(method: str, features: pd.DataFrame | np.ndarray | None) -> tuple[str, ...]:
    """The columns ``method`` weighs: :data:`ADDITIVE_FEATURES` for ``additive``; for ``layers``
    also :data:`LEVEL_FEATURES` and the layer kinds ``features`` (a frame) holds; for
    ``operators`` the operator counts it holds, :data:`KERNEL_FEATURES` and
    :data:`ADDITIVE_FEATURES`; none else."""
    if method == "additive":
        return ADDITIVE_FEATURES
    if method not in ("layers", "operators"):
        return ()
    if not isinstance(features, pd.DataFrame):
        raise ValueError(f"a {method} transfer needs the specs' features as a frame (transfer_features)")
    if method == "operators":
        return tuple(sorted(c for c in features.columns if c.startswith(OPERATOR_PREFIX))) + KERNEL_FEATURES \
            + ADDITIVE_FEATURES
    kinds = tuple(sorted(c for c in features.columns if c.startswith(KIND_PREFIX)))
    return LEVEL_FEATURES + kinds + ADDITIVE_FEATURES


def _ridge(z: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray, float]:
    """Ridge regression of ``y`` on standardised ``z`` (intercept not penalised), the strength
    chosen by the closed-form leave-one-out error; returns intercept, weights (of raw ``z``)
    and that error (mean absolute, % of ``y``)."""
    mean, std = z.mean(axis=0), z.std(axis=0)
    std[std == 0] = 1.0
    zs, centred = (z - mean) / std, y - y.mean()
    best = None
    for alpha in RIDGE_ALPHAS:
        inverse = np.linalg.inv(zs.T @ zs + alpha * np.eye(z.shape[1]))
        w = inverse @ zs.T @ centred
        hat = 1.0 / len(y) + np.einsum("ij,jk,ik->i", zs, inverse, zs)
        loo = (centred - zs @ w) / np.maximum(1.0 - hat, 1e-9)
        error = float(np.mean(np.abs(loo / y)) * 100)
        if best is None or error < best[0]:
            best = (error, w)
    error, w = best
    weights = w / std
    return float(y.mean() - mean @ weights), weights, error


def _positive(values: Sequence[float], what: str) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    if array.ndim != 1 or array.size == 0 or not np.all(np.isfinite(array)) or not np.all(array > 0):
        raise ValueError(f"{what} must be a non-empty list of positive finite numbers")
    return array


def fit_transfer(source: Sequence[float], target: Sequence[float], method: str = "scale",
                 features: pd.DataFrame | np.ndarray | None = None) -> Transfer:
    """The ``method`` map from the source predictor's figures to the target's measurements
    (the :data:`FEATURED_METHODS`: with the specs' :func:`transfer_features`)."""
    x, y = np.log(_positive(source, "source predictions")), np.log(_positive(target, "target measurements"))
    if x.size != y.size:
        raise ValueError(f"{x.size} source predictions but {y.size} target measurements")
    if method == "operators":
        return _fit_relative(np.exp(x), np.exp(y), method, features)
    if method in ("additive", "layers"):
        names = method_features(method, features)
        columns = _columns(features, x.size, names)
        intercept, weights, error = _ridge(np.column_stack([np.exp(x), columns]), np.exp(y))
        return Transfer(method, intercept, float(weights[0]), int(x.size), error, tuple(map(float, weights[1:])), names)
    if method == "scale":
        return Transfer("scale", float(np.mean(y - x)), 1.0, int(x.size))
    if method == "loglinear":
        if x.size < 2 or np.ptp(x) == 0:
            raise ValueError("loglinear needs at least two specs the source predictor tells apart")
        slope, intercept = np.polyfit(x, y, 1)
        return Transfer("loglinear", float(intercept), float(slope), int(x.size))
    raise ValueError(f"transfer method {method!r} is not known; expected one of {TRANSFER_METHODS}")


def _fit_relative(source: np.ndarray, target: np.ndarray, method: str,
                  features: pd.DataFrame | np.ndarray | None) -> Transfer:
    """target / source = slope + (columns / source) . weights by ridge: target = slope x source
    + columns . weights, each spec's error counted relative to its own figure."""
    names = method_features(method, features)
    columns = _columns(features, source.size, names)
    slope, weights, error = _ridge(columns / source[:, None], target / source)
    return Transfer(method, 0.0, slope, int(source.size), error, tuple(map(float, weights)), names)


def leave_one_out_error(source: Sequence[float], target: Sequence[float], method: str,
                        features: pd.DataFrame | np.ndarray | None = None) -> float:
    """Mean absolute error (%) of ``method`` predicting each spec from the others (the
    :data:`FEATURED_METHODS`: its ridge's closed-form leave-one-out error)."""
    x, y = _positive(source, "source predictions"), _positive(target, "target measurements")
    if method in FEATURED_METHODS:
        return fit_transfer(x, y, method, features).loo_abs_err_pct
    errors = []
    for i in range(x.size):
        keep = np.arange(x.size) != i
        predicted = fit_transfer(x[keep], y[keep], method).predict(x[i:i + 1])[0]
        errors.append(abs(predicted / y[i] - 1.0) * 100)
    return float(np.mean(errors))


def _holds(features: pd.DataFrame | np.ndarray | None, names: Sequence[str], prefix: str) -> bool:
    """``features`` is a frame with every column of ``names`` and some of ``prefix``."""
    return isinstance(features, pd.DataFrame) and set(names) <= set(features.columns) \
        and any(c.startswith(prefix) for c in features.columns)


def choose_transfer(source: Sequence[float], target: Sequence[float], features: pd.DataFrame | np.ndarray | None = None) -> Transfer:
    """The method with the lowest leave-one-out error, fitted on all the specs: ``scale`` alone
    below :data:`MIN_LOGLINEAR` specs, ``additive`` only with ``features`` and from
    :data:`MIN_ADDITIVE` specs, ``layers`` and ``operators`` only with a frame that holds their
    columns and from :data:`MIN_LAYERS`; ties go to the simpler method."""
    n = len(target)
    if n < 2:
        return fit_transfer(source, target, "scale")
    needs = {"additive": features is not None, "layers": _holds(features, LEVEL_FEATURES, KIND_PREFIX),
             "operators": _holds(features, KERNEL_FEATURES, OPERATOR_PREFIX)}
    methods = [m for m, least in (("scale", 2), ("loglinear", MIN_LOGLINEAR), ("additive", MIN_ADDITIVE),
                                  ("layers", MIN_LAYERS), ("operators", MIN_LAYERS)) if n >= least and needs.get(m, True)]
    errors = {m: leave_one_out_error(source, target, m, features) for m in methods}
    best = min(methods, key=lambda m: (errors[m], methods.index(m)))
    fitted = fit_transfer(source, target, best, features)
    return Transfer(fitted.method, fitted.intercept, fitted.slope, fitted.n, errors[best], fitted.weights,
                    fitted.features)
