"""Whole-model latency prediction: table sum plus the stored calibration (MnasNet section 3,
MobileNetV3 section 4: the latency term of the search reward)."""
from __future__ import annotations

from dataclasses import dataclass

from latency.calibration import apply_calibration, spec_features
from latency.keys import spec_keys
from latency.table import LatencyTable, load_table
from search_spaces.spec import ArchSpec


@dataclass(frozen=True)
class Prediction:
    latency_ms: float
    sum_ms: float
    features: dict[str, float]
    predictor: str = "calibrated"
    """Which predictor gave ``latency_ms`` (:mod:`latency.predictors`: ``calibrated`` or ``learned``)."""


class LatencyPredictor:
    """``predict_ms(spec)``: calibrated sum of the table entries of the spec's layers."""

    def __init__(self, table: LatencyTable) -> None:
        self.table = table

    @classmethod
    def load(cls, folder: str, *, force: bool = False) -> "LatencyPredictor":
        return cls(load_table(folder, force=force))

    def explain(self, spec: ArchSpec) -> Prediction:
        calibration = self.table.calibration(spec.resolution)
        features = spec_features(self.table, spec_keys(spec))
        return Prediction(apply_calibration(calibration, features), features["sum_ms"], features)

    def predict_ms(self, spec: ArchSpec) -> float:
        """Raises ``MissingKeyError`` if a layer is missing (never interpolates)."""
        return self.explain(spec).latency_ms
