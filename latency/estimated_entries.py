"""A table view that estimates the layers it has not measured, for ranking candidates only.

Active sampling (:mod:`latency.active`) ranks a pool of candidate specs by how unsure the
predictor is of them, and the features it ranks by read the table's entry of every layer. At
224x224 measuring the layers of every pool candidate before the first pick cost as long as the
whole models (about 9 of 29 minutes for a pool of 300), though only half the pool is ever
measured whole. LitePred (NSDI 2024) likewise ranks candidates by a cheap model before it
measures them. Here a layer not yet measured is priced by a least-squares fit, per layer kind
(stem, head, block operator with SE and activation), of log time on log MAdds, activation
elements and parameters over the entries measured so far; a kind with too few entries falls
back to one fit over all kinds. Only the known entries a caller names are used, so that the
same measurements give the same estimates (a resumed sampler repeats its choices). The layers
of a candidate are measured for real once it is picked (:func:`latency.learning.fit_table`),
and no fitted model ever sees an estimate.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

from latency.features import FeatureTable
from latency.keys import LayerKey, key_activations, key_cost, layer_kind

MIN_PER_KIND = 8
"""Known entries a layer kind needs for a fit of its own (else the fit over all kinds)."""
DESIGN = ("intercept", "log_madds", "log_activations", "log_params", "stride2")
"""The columns of the fit (:func:`_design`)."""


def _design(keys: Sequence[LayerKey]) -> np.ndarray:
    """Per key, the :data:`DESIGN` columns: 1, log MAdds, log activations, log parameters, stride 2 (0/1)."""
    rows = []
    for key in keys:
        params, madds = key_cost(key)
        rows.append([1.0, np.log1p(madds), np.log1p(key_activations(key)), np.log1p(params), float(key.stride == 2)])
    return np.asarray(rows, dtype=float).reshape(len(keys), len(DESIGN))


def _fit(keys: Sequence[LayerKey], values: np.ndarray) -> np.ndarray:
    x = _design(keys)
    return np.linalg.lstsq(x.T @ x + 1e-6 * np.eye(x.shape[1]), x.T @ np.log(values), rcond=None)[0]


class EstimatedEntries:
    """``table`` with the entries of ``known`` keys as measured and every other key estimated
    (module docstring). Reads like a :class:`latency.table.LatencyTable` for
    :func:`latency.features.feature_matrix`."""

    def __init__(self, table: FeatureTable, known: Iterable[LayerKey]) -> None:
        self.table, self.manifest = table, table.manifest
        self.known = sorted({k for k in known if k in table})
        if len(self.known) < len(DESIGN):
            raise ValueError(f"{len(self.known)} measured layers are too few to estimate others from; "
                             "measure the table's calibration specs first")
        warm = np.array([table.lookup(k) for k in self.known])
        cold = np.array([table.lookup_cold(k) for k in self.known])
        self._warm = dict(zip(self.known, warm))
        self._cold = dict(zip(self.known, cold))
        self._coefficients = {"*": _fit(self.known, warm)}
        self._cold_share = {"*": float(np.median(cold / warm))}
        by_kind: dict[str, list[int]] = {}
        for index, key in enumerate(self.known):
            by_kind.setdefault(layer_kind(key), []).append(index)
        for kind, indices in by_kind.items():
            if len(indices) >= MIN_PER_KIND:
                self._coefficients[kind] = _fit([self.known[i] for i in indices], warm[indices])
                self._cold_share[kind] = float(np.median(cold[indices] / warm[indices]))
        self._estimates: dict[LayerKey, float] = {}

    def estimated(self, key: LayerKey) -> bool:
        return key not in self._warm

    def lookup(self, key: LayerKey) -> float:
        if key in self._warm:
            return float(self._warm[key])
        if key not in self._estimates:
            coefficients = self._coefficients.get(layer_kind(key), self._coefficients["*"])
            self._estimates[key] = float(np.exp(_design([key])[0] @ coefficients))
        return self._estimates[key]

    def lookup_cold(self, key: LayerKey) -> float:
        if key in self._cold:
            return float(self._cold[key])
        return self.lookup(key) * self._cold_share.get(layer_kind(key), self._cold_share["*"])

    def keys_sum_ms(self, keys: Sequence[LayerKey], *, cold: bool = False) -> float:
        get = self.lookup_cold if cold else self.lookup
        return float(sum(get(k) for k in keys))

    def calibration(self, resolution: int) -> dict:
        return self.table.calibration(resolution)
