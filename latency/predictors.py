"""One protocol for every latency predictor a table can hold (ARCHITECTURE.md).

- ``table-sum``: the sum of the table entries of a spec's layers (MnasNet section 3's lookup);
- ``calibrated``: that sum through the table's calibration (:mod:`latency.calibration`);
- ``learned``: the calibrated prediction corrected by a model learned from whole-model
  measurements (:mod:`latency.learned`, after nn-Meter, MobiSys 2021, and LitePred, NSDI 2024);
  for a spec outside its training range it answers with the calibrated prediction and says so.

:func:`table_predictors` lists what a table holds; :func:`best_predictor` is the learned one
when the table holds one, else the calibrated one. None is trusted until validated on
held-out specs measured alike (``mobilenas latency validate`` scores them all).
"""
from __future__ import annotations

from typing import Protocol, Sequence

import numpy as np

from latency.calibration import apply_calibration, spec_features
from latency.features import feature_matrix
from latency.keys import spec_keys
from latency.learned import LearnedModel, load_model
from latency.table import LatencyTable
from search_spaces.spec import ArchSpec

CALIBRATED, TABLE_SUM, LEARNED = "calibrated", "table-sum", "learned"


class Predictor(Protocol):
    """``predict_named(specs)``: latencies in the table's units and the predictor that gave each."""

    name: str

    def predict_ms(self, spec: ArchSpec) -> float: ...

    def predict_named(self, specs: Sequence[ArchSpec]) -> list[tuple[float, str]]: ...


class TableSumPredictor:
    """The plain sum of the table's per-layer entries (no calibration)."""

    name = TABLE_SUM

    def __init__(self, table: LatencyTable) -> None:
        self.table = table

    def predict_ms(self, spec: ArchSpec) -> float:
        return self.table.keys_sum_ms(spec_keys(spec))

    def predict_named(self, specs: Sequence[ArchSpec]) -> list[tuple[float, str]]:
        return [(self.predict_ms(spec), self.name) for spec in specs]


class CalibratedPredictor:
    """The table sum through the table's calibration for the spec's resolution."""

    name = CALIBRATED

    def __init__(self, table: LatencyTable) -> None:
        self.table = table

    def predict_ms(self, spec: ArchSpec) -> float:
        return apply_calibration(self.table.calibration(spec.resolution), spec_features(self.table, spec_keys(spec)))

    def predict_named(self, specs: Sequence[ArchSpec]) -> list[tuple[float, str]]:
        return [(self.predict_ms(spec), self.name) for spec in specs]


class LearnedPredictor:
    """The learned model inside its training range, the calibrated prediction outside it;
    ``scale`` multiplies both (a table rescaled to this machine's speed, :mod:`latency.drift`)."""

    name = LEARNED

    def __init__(self, table: LatencyTable, model: LearnedModel, scale: float = 1.0) -> None:
        self.table, self.model, self.scale = table, model, float(scale)

    def predict_named(self, specs: Sequence[ArchSpec]) -> list[tuple[float, str]]:
        x = feature_matrix(self.table, specs)
        learned = self.model.predict_ms(x)
        calibrated = x[:, 0]  # FEATURE_NAMES[0] is calibrated_ms
        inside = self.model.in_range(x)
        return [(self.scale * float(v), LEARNED) if ok else (self.scale * float(c), CALIBRATED)
                for v, c, ok in zip(learned, calibrated, inside)]

    def predict_ms(self, spec: ArchSpec) -> float:
        return self.predict_named([spec])[0][0]


def table_predictors(table: LatencyTable, learned: LearnedPredictor | None = None, *,
                     read_learned: bool = True) -> dict[str, Predictor]:
    """Every predictor ``table`` holds, by name: ``learned`` when given, else the one in the
    table's folder (``read_learned``; :class:`latency.lazy.LazyPredictor` hands its own, in the
    units of a rescaled table).

    Raises:
        storage.statefiles.StateFileError: the folder's ``predictor.json`` is corrupt or foreign.
    """
    if learned is None and read_learned:
        model = load_model(table.folder, table.manifest)
        learned = None if model is None else LearnedPredictor(table, model)
    found: dict[str, Predictor] = {TABLE_SUM: TableSumPredictor(table), CALIBRATED: CalibratedPredictor(table)}
    if learned is not None:
        found[LEARNED] = learned
    return found


def best_predictor(table: LatencyTable) -> Predictor:
    """The learned predictor when the table holds one, else the calibrated table."""
    found = table_predictors(table)
    return found.get(LEARNED, found[CALIBRATED])


def predict_all(predictors: dict[str, Predictor], specs: Sequence[ArchSpec]) -> dict[str, np.ndarray]:
    """Each predictor's latencies of ``specs`` (for scoring them on the same measurements)."""
    return {name: np.array([v for v, _ in p.predict_named(specs)]) for name, p in predictors.items()}
