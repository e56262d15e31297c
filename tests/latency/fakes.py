"""A deterministic fake measurer for tests that must not depend on timing."""
from __future__ import annotations

import numpy as np

from latency.measurers import ModelLike, onnx_bytes_of


class FakeMeasurer:
    """Deterministic stand-in: latency proportional to the ONNX size (no timing, fast)."""

    name = "fake"

    def __init__(self, repeats: int = 5) -> None:
        self.repeats = repeats
        self.calls = 0

    def settings_dict(self) -> dict[str, object]:
        return {"measurer": self.name, "batch": 1, "repeats": self.repeats}

    def measure(self, model: ModelLike, input_shape: tuple[int, ...]) -> np.ndarray:
        self.calls += 1
        size = len(onnx_bytes_of(model, (1, *input_shape[-3:])))
        return np.full(self.repeats, 0.01 + size / 1e6) + np.linspace(0, 1e-4, self.repeats)
