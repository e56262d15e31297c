"""Active sampling of whole-model measurements for the learned predictor (``latency fit``).

Which model to measure next is chosen where the predictor is least sure, as LitePred (NSDI
2024) samples its training set adaptively rather than uniformly: a random forest is fitted to
the measurements so far and, among unmeasured candidates of a seeded pool, the ``batch``
whose trees disagree most (the standard deviation of the per-tree predictions of the log
residual) are measured next. The first ``initial`` models are the pool's first (a seeded
uniform sample). Sampling stops when the forest's out-of-bag error on the measured models
meets the targets or the budget is spent.

Every measurement is appended to ``measurements.csv`` in the table folder (fsynced,
:class:`storage.statefiles.CsvLog`) the moment it is made, one model at a time, so a kill loses
at most the model in flight; a rerun reads the file, never measures a spec it holds again,
and continues with the same pool and the same choices.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from latency.features import FEATURE_NAMES, feature_matrix
from latency.fitting import random_forest
from latency.learned import TreeEnsemble, dump_tree, residual_targets
from latency.validation import error_metrics
from search_spaces.encoding import format_spec, parse_spec
from search_spaces.spec import ArchSpec
from storage.settings import check_settings, setting
from storage.statefiles import CsvLog, StateFileError

log = logging.getLogger(__name__)
MEASUREMENTS_FILE = "measurements.csv"
MEASUREMENT_COLUMNS = ("spec", "resolution", "measured_ms", "ratio", "ratio_low", "ratio_high", "reference_ms", "pairs",
                       "baseline_ms", "source", "uncertainty", "time")
MeasureOne = Callable[[ArchSpec], dict[str, float]]
"""``measure(spec)`` -> a row's measurement fields: ``measured_ms`` (table units), ``ratio``,
``ratio_low``, ``ratio_high``, ``reference_ms``, ``pairs``, ``baseline_ms``."""
Features = Callable[[Sequence[ArchSpec]], np.ndarray]
PoolFeatures = Callable[[Sequence[ArchSpec], Sequence[ArchSpec]], np.ndarray]
"""``pool_features(pool, measured)``: the pool's feature matrix, given the specs measured so far
(:class:`latency.estimated_entries.EstimatedEntries` prices the layers not yet measured)."""
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class SamplingConfig:
    """``budget`` whole models in all (measurements already on file count), ``initial`` uniform
    ones first, then ``batch`` at a time by uncertainty from a pool of ``pool_factor x budget``
    candidates; stop early once the out-of-bag share within 5% and 10% meets the targets
    (with at least ``min_measured`` models). ``budget`` 80: at 224x224 the sampler met its targets
    from 60 models, and models fitted on the first n of a 150-model run read the same held-out
    accuracy from n = 80 on (``results/latency/README.md``)."""

    budget: int = setting(80, low=1)
    initial: int = setting(30, low=1)
    batch: int = setting(10, low=1)
    pool_factor: int = setting(4, low=1)
    target_within_5pct: float = setting(0.85, kind=float, low=0, high=1)
    target_within_10pct: float = setting(0.97, kind=float, low=0, high=1)
    min_measured: int = setting(60, low=1)
    trees: int = setting(100, low=1)
    seed: int = 0

    def __post_init__(self) -> None:
        check_settings(self, "sampling.{name}")


def read_measurements(folder: str | Path) -> pd.DataFrame:
    """``measurements.csv`` of the table in ``folder`` (empty when absent); a torn last row is
    ignored; a malformed one is an error naming the file and the line."""
    path = Path(folder) / MEASUREMENTS_FILE
    frame = CsvLog(path, MEASUREMENT_COLUMNS).read()
    for column in ("measured_ms", "resolution"):
        values = pd.to_numeric(frame[column], errors="coerce")
        bad = np.flatnonzero(values.isna().to_numpy() | ~(values.to_numpy(dtype=float) > 0))
        if len(bad):
            raise StateFileError(f"{path}: line {bad[0] + 2}: {column} = {frame[column].iloc[bad[0]]!r} is not allowed; "
                                 "expected a number > 0")
        frame[column] = values.astype(float)
    return frame


def most_uncertain(x_train: np.ndarray, y_train: np.ndarray, x_pool: np.ndarray, k: int, *, trees: int,
                   seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices of the ``k`` pool rows whose forest trees disagree most (largest first, ties by
    index), every pool row's spread, and the forest's out-of-bag predictions of ``y_train``."""
    forest = random_forest(trees, seed, oob=len(y_train) >= 10).fit(x_train, y_train)
    ensemble = TreeEnsemble.from_dict({"trees": [dump_tree(e.tree_) for e in forest.estimators_], "init": 0.0,
                                       "scale": 1.0 / trees})
    spread = ensemble.per_tree(x_pool).std(axis=1)
    order = np.lexsort((np.arange(len(spread)), -np.round(spread, 12)))
    oob = getattr(forest, "oob_prediction_", np.zeros(len(y_train)))
    return order[:k], spread, np.nan_to_num(oob)


class ActiveSampler:
    """Measures the pool's most informative specs into ``measurements.csv`` (module docstring)."""

    def __init__(self, folder: str | Path, pool: Sequence[ArchSpec], features: Features, measure: MeasureOne,
                 config: SamplingConfig, progress: Progress | None = None,
                 pool_features: PoolFeatures | None = None) -> None:
        """``pool_features``: how to rank the pool (default: ``features`` of the pool, once)."""
        self.folder, self.pool, self.features, self.measure = Path(folder), list(pool), features, measure
        self.pool_features_of = pool_features
        self.config = config
        self.progress = progress or (lambda phase, done, total: None)
        self.log = CsvLog(self.folder / MEASUREMENTS_FILE, MEASUREMENT_COLUMNS)
        self._pool_x: np.ndarray | None = None
        self.history: list[dict] = []

    def measured(self) -> tuple[list[ArchSpec], np.ndarray]:
        frame = read_measurements(self.folder)
        return [parse_spec(s) for s in frame["spec"]], frame["measured_ms"].to_numpy(dtype=float)

    def pool_features(self, measured: Sequence[ArchSpec]) -> np.ndarray:
        if self.pool_features_of is not None:
            return self.pool_features_of(self.pool, measured)
        if self._pool_x is None:
            self._pool_x = self.features(self.pool)
        return self._pool_x

    def next_batch(self, specs: Sequence[ArchSpec], measured_ms: np.ndarray) -> tuple[list[int], list[float], dict]:
        """Pool indices to measure next, their spread, and the out-of-bag figures so far.

        Batches are chosen at fixed counts (``initial``, ``initial + batch``, ...) from the rows
        measured before that count, so a run resumed mid-batch finishes the same batch."""
        if len(specs) < self.config.initial:
            done = {format_spec(s) for s in specs}
            todo = [i for i, spec in enumerate(self.pool) if format_spec(spec) not in done]
            picked = todo[:min(self.config.initial, self.config.budget) - len(specs)]
            return picked, [float("nan")] * len(picked), {}
        start = self.config.initial + (len(specs) - self.config.initial) // self.config.batch * self.config.batch
        before, ms_before = specs[:start], measured_ms[:start]
        done = {format_spec(s) for s in before}
        todo = [i for i, spec in enumerate(self.pool) if format_spec(spec) not in done]
        x = self.features(before)
        y = residual_targets(ms_before, x[:, FEATURE_NAMES.index("calibrated_ms")])
        order, spread, oob = most_uncertain(x, y, self.pool_features(before)[todo], min(self.config.batch, self.config.budget - start),
                                            trees=self.config.trees, seed=self.config.seed + start)
        calibrated = x[:, FEATURE_NAMES.index("calibrated_ms")]
        figures = error_metrics(calibrated * np.exp(oob), ms_before) if start >= 10 else {}
        since = {format_spec(s) for s in specs[start:]}
        chosen = [(todo[i], float(spread[i])) for i in order if format_spec(self.pool[todo[i]]) not in since]
        return [i for i, _ in chosen], [v for _, v in chosen], figures

    def target_met(self, figures: dict, n: int) -> bool:
        return bool(figures) and n >= self.config.min_measured and \
            figures["within_5pct"] >= self.config.target_within_5pct and \
            figures["within_10pct"] >= self.config.target_within_10pct

    def run(self) -> dict:
        """Measure until the targets or the budget; returns what happened (counts, figures, why)."""
        start, made = time.perf_counter(), 0
        while True:
            specs, measured_ms = self.measured()
            self.progress("measured", len(specs), self.config.budget)
            if len(specs) >= self.config.budget:
                return self._summary("budget spent", made, start)
            picked, spreads, figures = self.next_batch(specs, measured_ms)
            if figures:
                self.history.append({"n": len(specs), **figures})
            if self.target_met(figures, len(specs)):
                return self._summary("out-of-bag error met the targets", made, start)
            if not picked:
                return self._summary("pool exhausted", made, start)
            for index, spread in zip(picked, spreads):
                self._measure_and_append(self.pool[index], spread, "uniform" if np.isnan(spread) else "uncertain")
                made += 1

    def _measure_and_append(self, spec: ArchSpec, spread: float, source: str) -> None:
        row = self.measure(spec)
        self.log.append([{**row, "spec": format_spec(spec), "resolution": spec.resolution, "source": source,
                          "uncertainty": spread, "time": time.time()}])

    def _summary(self, why: str, made: int, start: float) -> dict:
        specs, _ = self.measured()
        return {"stopped": why, "measured_now": made, "measured_total": len(specs), "pool": len(self.pool),
                "sampling_s": time.perf_counter() - start, "out_of_bag": self.history}


def table_features(table_getter: Callable[[], object]) -> Features:
    """:func:`latency.features.feature_matrix` against the table ``table_getter()`` returns now."""
    return lambda specs: feature_matrix(table_getter(), specs)
