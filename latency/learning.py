"""``mobilenas latency fit``: measure whole models actively and store a learned predictor.

The job behind the command (:func:`fit_table`): open the table (fingerprint, drift probe),
draw a seeded pool of candidate specs of its space at each calibrated resolution (none of
them a calibration or validation spec of the table, nor any spec in ``exclude``), sample and
measure whole models where the predictor is least sure (:mod:`latency.active`; the pool is ranked
with the layers it lacks estimated, :mod:`latency.estimated_entries`, and a picked spec's layers
are measured into the table just before the spec itself), then compare and fit the candidates
(:mod:`latency.fitting`) and write ``predictor.json`` (:mod:`latency.learned`), but only when
the best candidate's cross-validated error is below the calibrated table's on the same
measurements: otherwise the model goes to ``predictor-candidate.json``, which no prediction
uses, and an earlier ``predictor.json`` is left as it was (on a machine too loaded to measure,
a model fitted to noise must not replace the table).
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import pandas as pd

from latency.active import (MEASUREMENTS_FILE, ActiveSampler, MeasureOne, PoolFeatures, SamplingConfig, read_measurements,
                            table_features)
from latency.endtoend import measure_specs
from latency.estimated_entries import EstimatedEntries
from latency.features import feature_matrix
from latency.fitting import FitConfig, fit_document
from latency.keys import spec_keys
from latency.lazy import LAZY_SPACES, LazyPredictor
from latency.learned import CANDIDATE_FILE, PREDICTOR_FILE, save_model
from latency.registry import measurer_from_recorded
from latency.table import CALIBRATION_FILE, VALIDATION_FILE
from latency.validation import sample_specs
from search_spaces.encoding import canonical, format_spec, parse_spec
from search_spaces.spec import ArchSpec, scale_width

log = logging.getLogger(__name__)
Progress = Callable[[str, int, int], None]
DEFAULT_PAIRS = 40
"""Run-by-run pairs with the reference per measured model (as ``latency validate`` per pass)."""


def table_measure(lazy: LazyPredictor, pairs: int = DEFAULT_PAIRS) -> MeasureOne:
    """``measure(spec)``: one whole model paired with the table's reference through its measurer,
    in the table's units (the ratio times its baseline)."""
    manifest = lazy.table.manifest
    measurer = measurer_from_recorded(manifest["measurer"])
    reference = parse_spec(manifest["reference"]["spec"])
    baseline = float(lazy.table.reference_baseline_ms)

    def measure(spec: ArchSpec) -> dict[str, float]:
        result = measure_specs(measurer, [spec], reference, pairs=pairs)[0]
        return {"measured_ms": result.in_units_of(baseline), "ratio": result.ratio, "ratio_low": result.low,
                "ratio_high": result.high, "reference_ms": result.reference_ms, "pairs": result.pairs,
                "baseline_ms": baseline}

    return measure


def layers_first(lazy: LazyPredictor, measure: MeasureOne, spent: dict[str, float]) -> MeasureOne:
    """``measure``, after the spec's missing layers are measured into the table (its features
    need them, and a kill between the two keeps the layers); adds their seconds to
    ``spent["layers_s"]``."""
    def measure_with_layers(spec: ArchSpec) -> dict[str, float]:
        tick = time.perf_counter()
        lazy.ensure([spec])
        spent["layers_s"] = spent.get("layers_s", 0.0) + time.perf_counter() - tick
        return measure(spec)

    return measure_with_layers


def ranking_features(lazy: LazyPredictor) -> PoolFeatures:
    """The pool's features for ranking: the layers of the table's calibration (and validation)
    specs and of the specs measured so far as measured, every other layer estimated
    (:class:`latency.estimated_entries.EstimatedEntries`), so that the same measurements rank
    the same way however many other layers the table holds."""
    calibrated = {key for text in table_specs(lazy.folder) for key in spec_keys(parse_spec(text))}

    def features(pool: Sequence[ArchSpec], measured: Sequence[ArchSpec]) -> np.ndarray:
        known = calibrated | {key for spec in measured for key in spec_keys(spec)}
        return feature_matrix(EstimatedEntries(lazy.table, known), pool)

    return features


def table_specs(folder: Path) -> set[str]:
    """Canonical strings of the specs the table already measured whole for other purposes
    (calibration, validation), whatever spelling wrote them."""
    found: set[str] = set()
    for name in (CALIBRATION_FILE, VALIDATION_FILE.replace(".json", ".csv")):
        path = folder / name
        if path.exists():
            found |= {canonical(s) for s in pd.read_csv(path)["spec"].astype(str)}
    return found


NARROWED_SHARE = 0.25
NARROWED_WIDTHS = (0.5, 0.9)
"""A quarter of the pool is narrowed by a width multiplier drawn from this range (MobileNetV3
Table 3's multiplier): NetAdapt shrinks models below the sizes a space samples, and a learned
model answers only inside its training range. Fitted on the demo's space alone, a predictor's
range ended at 0.38 ms while NetAdapt worked at 0.30-0.36 ms towards MobileNetV3-Small's
latency, so every NetAdapt step after the start fell back to the calibrated table."""


def narrowed(specs: list[ArchSpec], seed: int, exclude: Iterable[str] = ()) -> list[ArchSpec]:
    """``specs`` with every fourth narrowed by a seeded width multiplier, none in ``exclude``."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 104729]))
    step, excluded = round(1 / NARROWED_SHARE), set(exclude)
    out = [scale_width(spec, float(rng.uniform(*NARROWED_WIDTHS))) if i % step == step - 1 else spec
           for i, spec in enumerate(specs)]
    return [spec for spec in out if format_spec(spec) not in excluded]


def candidate_pool(folder: Path, manifest: dict, size: int, seed: int, exclude: Iterable[str] = ()) -> list[ArchSpec]:
    """``size`` seeded specs of the space of the table in ``folder`` (``manifest``), split over
    its calibrated resolutions, none of them in ``exclude`` or measured whole by the table."""
    if manifest["space"] not in LAZY_SPACES:
        raise ValueError(f"table space {manifest['space']!r} cannot be sampled; expected one of {sorted(LAZY_SPACES)}")
    shape = manifest.get("input", {"in_channels": 3, "num_classes": 1000})
    resolutions = sorted(int(r) for r in manifest["calibration"])
    if not resolutions:
        raise ValueError(f"table {folder} has no calibration; finish `mobilenas latency build` first")
    excluded = set(exclude) | table_specs(Path(folder))
    pool = []
    for index, resolution in enumerate(resolutions):
        space = LAZY_SPACES[manifest["space"]](resolution=resolution, in_channels=int(shape["in_channels"]),
                                               num_classes=int(shape["num_classes"]))
        pool += sample_specs(space, -(-size // len(resolutions)), seed + 7919 * index, excluded)
    return pool


def fit_table(folder: str | Path, *, sampling: SamplingConfig, fit: FitConfig | None = None, pairs: int = DEFAULT_PAIRS,
              exclude: Iterable[str] = (), progress: Progress | None = None, lazy: LazyPredictor | None = None) -> dict:
    """Measure (resumably) and fit; writes ``predictor.json``; returns a summary of what was done."""
    lazy = LazyPredictor(folder) if lazy is None else lazy
    start = time.perf_counter()
    pool = narrowed(candidate_pool(lazy.folder, lazy.table.manifest, sampling.pool_factor * sampling.budget, sampling.seed,
                                   exclude), sampling.seed, set(exclude) | table_specs(lazy.folder))
    layers_before, spent = lazy.measured_keys, {"layers_s": 0.0}
    lazy.ensure([parse_spec(s) for s in read_measurements(lazy.folder)["spec"]])  # rows added from elsewhere
    sampler = ActiveSampler(lazy.folder, pool, table_features(lambda: lazy.table),
                            layers_first(lazy, table_measure(lazy, pairs), spent), sampling, progress=progress,
                            pool_features=ranking_features(lazy))
    summary = sampler.run()
    measured_layers, layers_s = lazy.measured_keys - layers_before, spent["layers_s"]
    frame = read_measurements(lazy.folder)
    specs = [parse_spec(s) for s in frame["spec"]]
    x = feature_matrix(lazy.table, specs)
    document = fit_document(x, frame["measured_ms"].to_numpy(dtype=float), lazy.table.manifest,
                            lazy.folder / MEASUREMENTS_FILE, fit)
    document["sampling"] = {**summary, "layers_measured": measured_layers, "layers_s": layers_s, "pairs": pairs,
                            "budget": sampling.budget, "initial": sampling.initial, "batch": sampling.batch,
                            "seed": sampling.seed}
    stored = document["beats_calibrated"]
    path = save_model(lazy.folder, document, name=PREDICTOR_FILE if stored else CANDIDATE_FILE)
    lazy.reload_learned()
    return {"path": str(path), "stored": stored, "model_type": document["model_type"], "n": document["measurements"]["rows"],
            "cross_validation": document["cross_validation"], "total_s": time.perf_counter() - start,
            "layers_measured": measured_layers, "layers_s": layers_s, **summary}
