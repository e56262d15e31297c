"""Fitting the learned latency predictor: GBT vs random forest vs small MLP by cross-validation.

The candidates (scikit-learn) learn ``log(measured / calibrated)`` (:mod:`latency.learned`);
each is scored by k-fold out-of-fold predictions with the figures of
:func:`latency.validation.error_metrics`, beside the calibrated table on the same specs, and
the one with the smallest mean absolute error is refitted on every measurement and stored.
nn-Meter (MobiSys 2021) chose random forests for its kernel predictors and LitePred (NSDI
2024) an MLP ensemble; which wins on whole models of this space is measured, not assumed.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from sklearn.compose import TransformedTargetRegressor
from sklearn.ensemble import GradientBoostingRegressor, RandomForestRegressor
from sklearn.model_selection import KFold
from sklearn.neural_network import MLPRegressor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from latency.features import FEATURE_NAMES
from latency.learned import MODEL_TYPES, dump_estimator, make_document, residual_targets
from latency.validation import error_metrics

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FitConfig:
    """Candidates compared (``model_types``), folds of the cross-validation, seed."""

    model_types: tuple[str, ...] = MODEL_TYPES
    folds: int = 5
    seed: int = 0
    gbt_trees: int = 300
    rf_trees: int = 200
    mlp_hidden: tuple[int, ...] = field(default=(64, 32))

    def __post_init__(self) -> None:
        unknown = [m for m in self.model_types if m not in MODEL_TYPES]
        if unknown or not self.model_types:
            raise ValueError(f"fit.model_types = {self.model_types!r} is not allowed; expected some of {MODEL_TYPES}")
        if isinstance(self.folds, bool) or not isinstance(self.folds, int) or self.folds < 2:
            raise ValueError(f"fit.folds = {self.folds!r} is not allowed; expected an integer >= 2")


def make_estimator(model_type: str, config: FitConfig) -> Any:
    """An unfitted scikit-learn regressor of ``model_type`` (single-threaded, seeded)."""
    if model_type == "gbt":
        return GradientBoostingRegressor(n_estimators=config.gbt_trees, learning_rate=0.05, max_depth=3, subsample=0.8,
                                         min_samples_leaf=3, loss="huber", random_state=config.seed)
    if model_type == "rf":
        return random_forest(config.rf_trees, config.seed)
    if model_type == "mlp":
        # inputs and the target standardised: the log residuals are a few hundredths
        network = Pipeline([("scale", StandardScaler()),
                            ("mlp", MLPRegressor(hidden_layer_sizes=config.mlp_hidden, alpha=1e-2, max_iter=3000,
                                                 learning_rate_init=1e-3, random_state=config.seed))])
        return TransformedTargetRegressor(regressor=network, transformer=StandardScaler())
    raise ValueError(f"model_type {model_type!r} is not known; expected one of {MODEL_TYPES}")


def random_forest(trees: int, seed: int, oob: bool = False) -> RandomForestRegressor:
    """The forest whose tree spread active sampling reads (:mod:`latency.active`)."""
    return RandomForestRegressor(n_estimators=trees, min_samples_leaf=2, max_features=0.33, random_state=seed,
                                 n_jobs=1, oob_score=oob, bootstrap=True)


def out_of_fold(model_type: str, x: np.ndarray, y: np.ndarray, config: FitConfig) -> np.ndarray:
    """Out-of-fold predictions of the log residual (``folds``-fold, shuffled with the seed)."""
    predicted = np.empty(len(y))
    folds = KFold(n_splits=min(config.folds, len(y)), shuffle=True, random_state=config.seed)
    for train, test in folds.split(x):
        predicted[test] = make_estimator(model_type, config).fit(x[train], y[train]).predict(x[test])
    return predicted


def compare_models(x: np.ndarray, measured_ms: np.ndarray, config: FitConfig) -> dict[str, dict]:
    """Cross-validated figures of each candidate and of the calibrated table alone (``calibrated``),
    with the seconds each candidate's cross-validation took."""
    calibrated = x[:, FEATURE_NAMES.index("calibrated_ms")]
    y = residual_targets(measured_ms, calibrated)
    results = {"calibrated": error_metrics(calibrated, measured_ms)}
    for model_type in config.model_types:
        start = time.perf_counter()
        predicted = calibrated * np.exp(out_of_fold(model_type, x, y, config))
        results[model_type] = {**error_metrics(predicted, measured_ms), "cv_s": time.perf_counter() - start}
        log.info("%s: cross-validated within 5%% %.1f%%, within 10%% %.1f%%", model_type,
                 100 * results[model_type]["within_5pct"], 100 * results[model_type]["within_10pct"])
    return results


def choose(results: dict[str, dict], model_types: Sequence[str]) -> str:
    """The candidate with the smallest cross-validated mean absolute error (ties: listed first)."""
    return min(model_types, key=lambda m: (round(results[m]["mean_abs_err_pct"], 3), list(model_types).index(m)))


def fit_document(x: np.ndarray, measured_ms: Sequence[float], manifest: dict, measurements_path: Path,
                 config: FitConfig | None = None) -> dict[str, Any]:
    """Compare the candidates, refit the best on every row and return ``predictor.json``'s content.

    Raises:
        ValueError: fewer rows than folds, or a measured latency that is not > 0 ms.
    """
    config = FitConfig() if config is None else config
    measured = np.asarray(measured_ms, dtype=float)
    if len(measured) < config.folds or not np.all(measured > 0):
        raise ValueError(f"cannot fit on {len(measured)} measurements; expected at least {config.folds}, all > 0 ms")
    start = time.perf_counter()
    results = compare_models(x, measured, config)
    best = choose(results, config.model_types)
    y = residual_targets(measured, x[:, FEATURE_NAMES.index("calibrated_ms")])
    estimator = make_estimator(best, config).fit(x, y)
    dumped = dump_estimator(best, estimator, x)
    beats = results[best]["mean_abs_err_pct"] < results["calibrated"]["mean_abs_err_pct"]
    extra = {"cross_validation": results, "chosen_by": "smallest cross-validated mean abs error",
             "beats_calibrated": bool(beats),
             "folds": config.folds, "seed": config.seed, "fit_s": time.perf_counter() - start}
    return make_document(best, dumped, x, manifest, measurements_path, len(measured), extra)
