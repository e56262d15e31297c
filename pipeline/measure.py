"""Several models' end-to-end latency measured side by side, in interleaved rounds so that drift
hits every model alike (the pipeline's target, its NetAdapt check and its ``measure`` stage;
``mobilenas compare``)."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from latency.measurers import OrtSettings, measure_model_ms, onnx_bytes_of
from search_spaces.builder import build_model
from search_spaces.spec import ArchSpec


def measure_side_by_side(specs: Sequence[ArchSpec], *, rounds: int = 5, settings: OrtSettings | None = None
                         ) -> list[dict[str, float]]:
    """End-to-end ONNX Runtime latency of each spec, measured in ``rounds`` interleaved rounds
    (so drift hits every model alike); median over rounds of the per-round medians, and the
    rounds' min/max as the spread (batch 1, 1 thread by default)."""
    settings = settings or OrtSettings(warmup=10, repeats=50)
    models = [onnx_bytes_of(build_model(s).eval(), (1, s.in_channels, s.resolution, s.resolution)) for s in specs]
    medians: list[list[float]] = [[] for _ in specs]
    for _ in range(rounds):
        for index, (spec, model) in enumerate(zip(specs, models)):
            samples = measure_model_ms(model, (spec.in_channels, spec.resolution, spec.resolution), settings)
            medians[index].append(float(np.median(samples)))
    return [{"latency_ms": float(np.median(m)), "latency_min_ms": min(m), "latency_max_ms": max(m),
             "rounds": rounds} for m in medians]
