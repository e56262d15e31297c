"""End-to-end measurement of whole models on a machine shared with other jobs.

Load from other jobs on the same cores only ever adds time: a preempted run takes a whole
scheduler slice longer, a busy sibling thread slows a run down. On this machine kind (2
shared cores) the median of a model's runs moved by +/-10-20% between two passes minutes
apart, and dividing it by the adjacent measurements of a reference model made that worse
(test-retest of 12 specs: median difference 18.7% normalised vs 7.6% raw), while a low
percentile of all runs pooled over the rounds repeated within 3.4% (FINDINGS-style check in
results/latency/README.md). A whole model's latency is therefore the 10th percentile of all
its timed runs over several interleaved rounds (:data:`FAST_QUANTILE`), the machine's speed
when least disturbed; the median and its reference-normalised value are kept alongside.
Each sweep still measures a fixed reference model between models (ref, m1, ref, m2, ...),
which records the load and feeds the drift probe's baseline.
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


FAST_QUANTILE = 10.0
"""Whole-model latency is this percentile of every timed run over all rounds (see the module
docstring); 10 keeps it clear of the single fastest outlier."""


@dataclass(frozen=True)
class EndToEnd:
    """One model's latency (``latency_ms``: the :data:`FAST_QUANTILE` percentile of all its
    runs, raw), the median of its per-round medians (``raw_ms``), that median normalised by
    the adjacent reference measurements (``normalised_ms``) and the rounds behind them."""

    latency_ms: float
    raw_ms: float
    normalised_ms: float
    rounds: int

    @property
    def ref_ratio(self) -> float:
        return self.raw_ms / self.normalised_ms


Round = list[tuple[float, np.ndarray]]
"""One sweep: per model (normalised median ms, raw samples ms)."""


def measure_round(measurer: Measurer, models: Sequence[nn.Module | bytes], specs: Sequence[ArchSpec],
                  reference: Reference, baseline_ms: float) -> Round:
    """One sweep ref, m1, ref, m2, ref...: per model (normalised median ms, raw samples)."""
    out, before = [], reference.measure(measurer)
    for model, spec in zip(models, specs):
        samples = np.asarray(measurer.measure(model, spec_input_shape(spec)), dtype=float)
        after = reference.measure(measurer)
        out.append((float(np.median(samples)) * baseline_ms / ((before + after) / 2), samples))
        before = after
    return out


def measure_rounds(measurer: Measurer, specs: Sequence[ArchSpec], reference: Reference, baseline_ms: float,
                   *, rounds: int = 3, models: Sequence[nn.Module | bytes] | None = None,
                   progress: Progress | None = None) -> list[Round]:
    """Every spec measured in ``rounds`` interleaved sweeps (:func:`measure_round` each).
    ``models``: prepared models to reuse (exported once)."""
    models = [prepared_model(measurer, spec) for spec in specs] if models is None else models
    per_round = []
    for r in range(rounds):
        per_round.append(measure_round(measurer, models, specs, reference, baseline_ms))
        if progress is not None:
            progress(r + 1, rounds)
    return per_round


def summarise_rounds(rounds: Sequence[Round]) -> list[EndToEnd]:
    """Per spec, over every round given: :class:`EndToEnd`."""
    results = []
    for i in range(len(rounds[0])):
        samples = np.concatenate([r[i][1] for r in rounds])
        medians = [float(np.median(r[i][1])) for r in rounds]
        results.append(EndToEnd(float(np.percentile(samples, FAST_QUANTILE)), float(np.median(medians)),
                                float(np.median([r[i][0] for r in rounds])), len(rounds)))
    return results


def measure_specs(measurer: Measurer, specs: Sequence[ArchSpec], reference: Reference, baseline_ms: float,
                  *, rounds: int = 3, progress: Progress | None = None) -> list[EndToEnd]:
    """Each spec measured in ``rounds`` interleaved sweeps; see :class:`EndToEnd`."""
    return summarise_rounds(measure_rounds(measurer, specs, reference, baseline_ms, rounds=rounds, progress=progress))
