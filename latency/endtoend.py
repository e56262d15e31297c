"""End-to-end measurement of whole models, normalised by an interleaved reference model.

This machine kind drifts by +/-5-10% between minutes (host contention, FINDINGS.md), more
than the error a good table should have. Each model is therefore measured between two
measurements of a fixed reference model, in several rounds spread over the run; a model's
latency is the median over rounds of ``model / mean(adjacent references)`` times the
reference's baseline (its median over the table build). This is the interleaved reference
re-measurement STYLE.md section 4 asks for; raw values are kept alongside.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
from torch import nn

from latency.measurers import Measurer, TorchMeasurer
from search_spaces.builder import build_model
from search_spaces.onnx_export import export_module_onnx
from search_spaces.spec import ArchSpec

log = logging.getLogger(__name__)
Progress = Callable[[int, int], None]


def prepared_model(measurer: Measurer, spec: ArchSpec, seed: int = 0) -> nn.Module | bytes:
    """What ``measurer.measure`` takes for ``spec``: the module for torch, ONNX bytes (exported
    once, reused across rounds) otherwise. Weights are seeded so runs are reproducible."""
    import torch

    torch.manual_seed(seed)
    model = build_model(spec).eval()
    if isinstance(measurer, TorchMeasurer):
        return model
    batch = int(measurer.settings_dict().get("batch", 1))
    return export_module_onnx(model, (batch, spec.in_channels, spec.resolution, spec.resolution))


def spec_input_shape(spec: ArchSpec) -> tuple[int, int, int]:
    return (spec.in_channels, spec.resolution, spec.resolution)


@dataclass
class Reference:
    """The reference model and every median measured of it (ms)."""

    spec: ArchSpec
    model: nn.Module | bytes
    history_ms: list[float]

    def measure(self, measurer: Measurer) -> float:
        value = float(np.median(measurer.measure(self.model, spec_input_shape(self.spec))))
        self.history_ms.append(value)
        return value


@dataclass(frozen=True)
class EndToEnd:
    """One model's normalised (``latency_ms``) and raw medians, and the rounds behind them."""

    latency_ms: float
    raw_ms: float
    ref_ratio: float
    rounds: int


def measure_round(measurer: Measurer, models: Sequence[nn.Module | bytes], specs: Sequence[ArchSpec],
                  reference: Reference, baseline_ms: float) -> list[tuple[float, float]]:
    """One sweep ref, m1, ref, m2, ref...: per model (normalised ms, raw ms)."""
    out, before = [], reference.measure(measurer)
    for model, spec in zip(models, specs):
        raw = float(np.median(measurer.measure(model, spec_input_shape(spec))))
        after = reference.measure(measurer)
        out.append((raw * baseline_ms / ((before + after) / 2), raw))
        before = after
    return out


def measure_rounds(measurer: Measurer, specs: Sequence[ArchSpec], reference: Reference, baseline_ms: float,
                   *, rounds: int = 3, models: Sequence[nn.Module | bytes] | None = None,
                   progress: Progress | None = None) -> np.ndarray:
    """Every spec measured in ``rounds`` interleaved sweeps: an array ``(rounds, specs, 2)``
    of (normalised ms, raw ms). ``models``: prepared models to reuse (exported once)."""
    models = [prepared_model(measurer, spec) for spec in specs] if models is None else models
    per_round = []
    for r in range(rounds):
        per_round.append(measure_round(measurer, models, specs, reference, baseline_ms))
        if progress is not None:
            progress(r + 1, rounds)
    return np.asarray(per_round, dtype=float).reshape(rounds, len(specs), 2)


def summarise_rounds(values: np.ndarray) -> list[EndToEnd]:
    """Per spec: the medians over rounds of an ``(rounds, specs, 2)`` array (:func:`measure_rounds`)."""
    norm, raw = np.median(values[..., 0], axis=0), np.median(values[..., 1], axis=0)
    return [EndToEnd(float(n), float(r), float(r / n), int(values.shape[0])) for n, r in zip(norm, raw)]


def measure_specs(measurer: Measurer, specs: Sequence[ArchSpec], reference: Reference, baseline_ms: float,
                  *, rounds: int = 3, progress: Progress | None = None) -> list[EndToEnd]:
    """Each spec measured in ``rounds`` interleaved sweeps, normalised by the reference."""
    return summarise_rounds(measure_rounds(measurer, specs, reference, baseline_ms, rounds=rounds, progress=progress))
