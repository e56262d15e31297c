"""Whole models timed end to end, paired with a reference model (:mod:`latency.paired`).

Every whole-model figure of MobileNAS goes through :func:`measure_specs`: table calibration and
validation, NetAdapt's measured check, the pipeline's target and final measurement, ``train``,
``compare`` and ``latency predict --measure``. Each spec is timed alternating run by run with a
reference spec through the same measurer (a device command included), and its figure is the
median per-pair ratio with its interval, taken in a measuring child process (:mod:`latency.isolated`).
:func:`measure_specs_ms` converts to milliseconds at
the reference's speed measured alongside; a table converts with its own baseline instead
(:meth:`latency.paired.PairedRatio.in_units_of`), so its units do not move with the machine.
"""
from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from latency.isolated import measure_where_fresh
from latency.measurers import Measurer, TorchMeasurer
from latency.paired import DEFAULT_PAIRS, WHOLE_MODEL_PRECISION, PairedRatio
from search_spaces.builder import build_model
from search_spaces.encoding import format_spec
from search_spaces.onnx_export import DEFAULT_OPSET, export_module_onnx
from search_spaces.reference import reference_spec
from search_spaces.spec import ArchSpec
from storage.statefiles import write_bytes_atomic

log = logging.getLogger(__name__)
DEFAULT_REFERENCE = "mobilenetv3-small"
"""Reference of whole-model measurements made without a table (``train``, ``compare``)."""


def prepared_model(measurer: Measurer, spec: ArchSpec, seed: int = 0) -> nn.Module | bytes:
    """What ``measurer`` takes for ``spec``: the module for torch, ONNX bytes otherwise (exported
    once, reused across pairs). Weights are seeded so runs are reproducible."""
    torch.manual_seed(seed)
    model = build_model(spec).eval()
    if isinstance(measurer, TorchMeasurer):
        return model
    batch = int(measurer.settings_dict().get("batch", 1))
    return export_module_onnx(model, (batch, spec.in_channels, spec.resolution, spec.resolution))


def spec_input_shape(spec: ArchSpec) -> tuple[int, int, int]:
    return (spec.in_channels, spec.resolution, spec.resolution)


def _cache_dir() -> Path:
    return Path(os.environ.get("MOBILENAS_CACHE") or Path.home() / ".cache" / "mobilenas") / "latency-reference"


def cached_model(measurer: Measurer, spec: ArchSpec) -> nn.Module | bytes:
    """:func:`prepared_model`, with ONNX bytes cached on disk (keyed by spec, batch, torch and
    opset): the reference and probe models are timed at every table opening, and their export
    would take longer than the timing."""
    if isinstance(measurer, TorchMeasurer):
        return prepared_model(measurer, spec)
    batch = int(measurer.settings_dict().get("batch", 1))
    digest = hashlib.sha256(f"{format_spec(spec)}|{batch}|{torch.__version__}|{DEFAULT_OPSET}".encode()).hexdigest()[:20]
    path = _cache_dir() / f"{digest}.onnx"
    if path.is_file():
        return path.read_bytes()
    data = prepared_model(measurer, spec)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(path, data)
    except OSError as exc:  # a read-only home only costs the export next time
        log.debug("cannot cache the reference model in %s: %s", path.parent, exc)
    return data


def default_reference(like: ArchSpec) -> ArchSpec:
    """:data:`DEFAULT_REFERENCE` at ``like``'s input shape and class count."""
    return reference_spec(DEFAULT_REFERENCE, resolution=like.resolution, num_classes=like.num_classes,
                          in_channels=like.in_channels)


def measure_specs(measurer: Measurer, specs: Sequence[ArchSpec], reference: ArchSpec, *, pairs: int = DEFAULT_PAIRS,
                  passes: int = 1, models: Sequence[nn.Module | bytes] | None = None,
                  precision: float | None = None, block: int | None = None, isolate: bool = True,
                  min_seconds: float = 0.0) -> list[PairedRatio]:
    """Each spec's :class:`PairedRatio` to ``reference`` (see the module docstring).

    ``models``: prepared models to reuse (exported once); ``passes``: cycles over the specs;
    ``precision``: more pairs until each interval is that tight, ``block``: runs per block (None:
    sized by the run time), ``min_seconds``: passes spread over at least that long
    (:func:`latency.paired.measure_paired`). ``isolate``: measured in the
    measuring child process where the measurer allows (:mod:`latency.isolated`).
    """
    models = [prepared_model(measurer, spec) for spec in specs] if models is None else models
    return measure_where_fresh(measurer, models, [spec_input_shape(s) for s in specs], cached_model(measurer, reference),
                               spec_input_shape(reference), isolate=isolate, pairs=pairs, passes=passes,
                               precision=precision, block=block, min_seconds=min_seconds)


def measure_specs_ms(specs: Sequence[ArchSpec], measurer: Measurer | None = None, *, reference: ArchSpec | None = None,
                     pairs: int = DEFAULT_PAIRS, passes: int = 2,
                     precision: float | None = WHOLE_MODEL_PRECISION,
                     block: int | None = None, min_seconds: float = 0.0) -> list[dict[str, float]]:
    """Figures of each spec for reports: ``latency_ms`` (ratio x the reference's median over the
    session, one speed for every spec so that they compare), ``ratio`` with ``ratio_low``/``ratio_high`` to ``reference`` (default:
    :func:`default_reference` of the first spec), ``reference_ms``, ``pairs``. ONNX Runtime CPU,
    1 thread, unless ``measurer`` is given."""
    if measurer is None:
        from latency.measurers import OrtMeasurer, OrtSettings

        measurer = OrtMeasurer(OrtSettings(warmup=10, repeats=50))
    reference = default_reference(specs[0]) if reference is None else reference
    itself = [format_spec(spec) == format_spec(reference) for spec in specs]
    timed = [spec for spec, same in zip(specs, itself) if not same] or list(specs)
    measured = iter(measure_specs(measurer, timed, reference, pairs=pairs, passes=passes, precision=precision,
                                  block=block, min_seconds=min_seconds))
    # the reference is 1x itself: pairing it with a second session of itself only adds the order's offset
    paired = list(measured) if len(timed) == len(specs) else [None if same else next(measured) for same in itself]
    reference_ms = float(np.median([r.reference_ms for r in paired if r is not None]))  # one speed for all
    return [_figures(r or PairedRatio(1.0, 1.0, 1.0, reference_ms, 0), reference_ms, reference) for r in paired]


def _figures(paired: PairedRatio, reference_ms: float, reference: ArchSpec) -> dict[str, float]:
    """One spec's report figures at the session's speed of the reference."""
    return {"latency_ms": paired.in_units_of(reference_ms), "ratio": paired.ratio, "ratio_low": paired.low,
            "ratio_high": paired.high, "reference_ms": reference_ms, "pairs": paired.pairs,
            "reference": format_spec(reference)}
