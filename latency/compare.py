"""Two tables side by side (e.g. float vs int8 ONNX Runtime, MobileNetV3 section 6.1):
predicted latency of the reference models and of a sample of the space, and their ratio."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from latency.keys import spec_keys
from latency.lazy import LazyPredictor
from latency.predictor import LatencyPredictor
from search_spaces.encoding import format_spec
from search_spaces.spec import ArchSpec


@dataclass(frozen=True)
class ComparisonRow:
    """One spec's prediction in table A and table B (``None``: layers missing from it)."""

    name: str
    spec: str
    a_ms: float | None
    b_ms: float | None

    @property
    def ratio(self) -> float | None:
        """``b_ms / a_ms`` (e.g. int8 over float), ``None`` when either is missing."""
        return None if self.a_ms is None or self.b_ms is None else self.b_ms / self.a_ms

    def to_dict(self) -> dict:
        return {"name": self.name, "spec": self.spec, "a_ms": self.a_ms, "b_ms": self.b_ms, "ratio": self.ratio}


def table_label(predictor: LazyPredictor) -> str:
    """``ort-cpu`` or, for int8, e.g. ``ort-cpu-int8 (qdq, uint8/int8)``."""
    recorded = predictor.table.manifest["measurer"]
    label = str(recorded.get("measurer"))
    if "quant_format" in recorded:
        label += f" ({recorded['quant_format']}, {recorded['activation_type']}/{recorded['weight_type']}"
        label += ", per-channel)" if recorded.get("per_channel") else ")"
    return label


def _predict(predictor: LazyPredictor, spec: ArchSpec, measure_missing: bool) -> float | None:
    if measure_missing:
        return predictor.predict_ms(spec)
    if any(key not in predictor.table for key in spec_keys(spec)):
        return None
    return LatencyPredictor(predictor.table).predict_ms(spec)


def compare(a: LazyPredictor, b: LazyPredictor, specs: Mapping[str, ArchSpec], *,
            measure_missing: bool = False) -> list[ComparisonRow]:
    """Predictions of every spec in ``a`` and ``b``; missing layers are measured into each
    table when ``measure_missing`` (on this machine), else the entry is ``None``."""
    for resolution in sorted({spec.resolution for spec in specs.values()}):
        for predictor in (a, b):
            predictor.table.calibration(resolution)  # raises MissingKeyError naming the calibrated ones
    return [ComparisonRow(name, format_spec(spec), _predict(a, spec, measure_missing), _predict(b, spec, measure_missing))
            for name, spec in specs.items()]


def ratio_summary(rows: list[ComparisonRow]) -> dict[str, float]:
    """Median, min and max of the B/A ratios present (empty when none)."""
    ratios = np.array([row.ratio for row in rows if row.ratio is not None])
    if not ratios.size:
        return {}
    return {"n": int(ratios.size), "median": float(np.median(ratios)), "min": float(ratios.min()), "max": float(ratios.max())}


