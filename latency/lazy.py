"""Lazy latency tables: measure a layer the first time a search asks about it.

A full table for a space takes minutes; a search or NetAdapt run that visits a few hundred
specs touches a small fraction of its layer keys. :func:`ensure_table` builds a *lazy* table
(the reference model plus a calibration fitted on a small set of whole models, with only
their layers measured) when none exists, or reuses a matching one, and
:class:`LazyPredictor` measures the keys a spec needs and the table lacks before
predicting (the per-layer lookup table of MnasNet section 3, filled on demand). Stem and
head keys carry the input channels and class count, so a 1x32x32 10-class spec gets its own
stem and head entries, measured here like any other missing key.
"""
from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable, Iterable, Sequence

from latency.build import BuildConfig, Progress, TableBuilder
from latency.drift import DEFAULT_TOLERANCE, DriftReport, open_table, rescaled
from latency.endtoend import measure_specs
from latency.keys import spec_keys
from latency.learned import LearnedModel, load_model
from latency.measurers import Measurer, OrtMeasurer, OrtSettings
from latency.paired import WHOLE_MODEL_PRECISION, PairedRatio
from latency.predictor import LatencyPredictor, Prediction
from latency.predictors import LEARNED, LearnedPredictor, table_predictors
from latency.registry import measurer_from_recorded
from latency.table import MANIFEST_FILE, LatencyTable, TableMismatchError, check_manifest, load_table, read_manifest
from latency.validation import sample_specs
from search_spaces.encoding import parse_spec
from search_spaces.registry import SPACES
from search_spaces.reference import reference_spec
from search_spaces.spec import ArchSpec

log = logging.getLogger(__name__)
SpaceFactory = Callable[..., object]
LAZY_SPACES: dict[str, SpaceFactory] = dict(SPACES)
"""Spaces :func:`ensure_table` can sample by name (the CLI's registry is ``mobilenas.spaces``)."""
LAZY_CALIBRATION_SPECS = 8
LAZY_CALIBRATION_ROUNDS = 2
LAZY_MAX_PASSES = 1
"""Passes over each missing layer in a lazy table (a full build measures a noisy layer up to 3
times and pools them). A lazy table is filled while a search's trials share the machine, and
there two measurements of the same 32x32 layers differ by more than extra passes narrow: under
the load injector on a 2-core AMD EPYC, five ``make demo`` searches' pricing replayed into their
tables as the table stage left them (``benchmarks/bench_lazy_passes.py``,
``results/latency/lazy_passes.json``) moved the candidates' predictions by 13.5% (median over the
runs of the median absolute difference) between one pass and three, as much as between three
passes and the run's own three-pass measurement of the same layers (13.4%), and one pass took
30% less time (22.4 s against 31.6 s for about 270 layers). A full 224x224 build at one pass, on a
machine with nothing beside it, lost a little against whole models (99% / 91% within 10% / 5%
against 100% / 96%), which is why full builds keep three; ``latency build --lazy --max-passes 3``
makes a lazy table that measures like them."""
ANCHOR_MODELS = (("mobilenetv3-small", 0.5), ("mobilenetv3-small", 1.0), ("mobilenetv3-large", 0.5))
"""Hand-designed models measured with the sampled calibration specs: they are smaller than most
of the space, so the calibration also covers what NetAdapt shrinks towards and what a target
like MobileNetV3-Small's latency asks for (no extrapolation below the sampled specs)."""


def anchor_specs(resolution: int, in_channels: int, num_classes: int) -> list[ArchSpec]:
    """:data:`ANCHOR_MODELS` adapted to the table's input shape."""
    return [reference_spec(name, resolution=resolution, width=width, num_classes=num_classes, in_channels=in_channels)
            for name, width in ANCHOR_MODELS]


class LazyPredictor:
    """``predict_ms(spec)``: the best prediction the table holds, measuring first (on this
    machine, appended to the table) the layer keys the table lacks.

    The best prediction is the learned model's (``predictor.json``, :mod:`latency.learned`)
    for a spec inside its training range, else the calibrated table's; ``explain(spec).predictor``
    says which. A corrupt or foreign ``predictor.json`` is refused at opening.

    The table is opened through :func:`latency.drift.open_table` (fingerprint and drift
    probe; ``tolerance``/``on_drift`` as there). New entries are normalised by the
    reference model like a full build's; a rescaled table stays rescaled after they are
    added. Measuring into a table from other hardware is refused (it would mix machines).
    """

    def __init__(self, folder: str | Path, *, tolerance: float = DEFAULT_TOLERANCE, on_drift: str = "error",
                 progress: Progress | None = None, config: BuildConfig | None = None, trusted: bool = False) -> None:
        """``trusted``: the table was made by this run or command (see :func:`latency.drift.open_table`)."""
        self.folder = Path(folder)
        self.drift: DriftReport
        self.table, self.drift = open_table(self.folder, tolerance=tolerance, on_drift=on_drift, trusted=trusted)
        self.progress, self.config = progress, config
        self.measured_keys = 0
        self._builder: TableBuilder | None = None
        self._unscaled: LatencyTable | None = None
        self.learned: LearnedModel | None = load_model(self.folder, read_manifest(self.folder))

    def reload_learned(self) -> None:
        """Read ``predictor.json`` again (after ``latency fit`` wrote one)."""
        self.learned = load_model(self.folder, read_manifest(self.folder))

    def learned_predictor(self) -> LearnedPredictor | None:
        """The learned predictor, in the units of :attr:`table`: a rescaled table's model reads
        the features it was fitted on (the table as stored) and its answer is rescaled."""
        if self.learned is None:
            return None
        if self.drift.action != "rescaled":
            return LearnedPredictor(self.table, self.learned)
        if self._unscaled is None:
            self._unscaled = load_table(self.folder, force=True)
        return LearnedPredictor(self._unscaled, self.learned, scale=self.drift.ratio)

    def predictors(self) -> dict:
        """Every predictor the table holds (:func:`latency.predictors.table_predictors`), in its units."""
        return table_predictors(self.table, self.learned_predictor(), read_learned=False)

    def explain(self, spec: ArchSpec, *, measure_missing: bool = True) -> Prediction:
        """The prediction with its table sum, calibration features and the predictor that gave it."""
        if measure_missing:
            self.ensure([spec])
        calibrated = LatencyPredictor(self.table).explain(spec)
        learned = self.learned_predictor()
        if learned is None:
            return calibrated
        latency, name = learned.predict_named([spec])[0]
        return replace(calibrated, latency_ms=latency, predictor=name) if name == LEARNED else calibrated

    def predict_ms(self, spec: ArchSpec) -> float:
        """The best latency the table holds for ``spec`` (ms, as :meth:`explain`, one walk over its
        layers); raises ``MissingKeyError`` only when the table has no calibration for ``spec.resolution``."""
        self.ensure([spec])
        learned = self.learned_predictor()
        if learned is None:
            return LatencyPredictor(self.table).predict_ms(spec)
        return learned.predict_named([spec])[0][0]

    def predict_many(self, specs: Sequence[ArchSpec]) -> list[float]:
        """``predict_ms`` of each spec, measuring every missing key in one pass first."""
        self.ensure(specs)
        learned = self.learned_predictor()
        if learned is not None:
            return [value for value, _ in learned.predict_named(specs)]
        predictor = LatencyPredictor(self.table)
        return [predictor.predict_ms(spec) for spec in specs]

    def measure(self, specs: Sequence[ArchSpec], *, passes: int = 2,
                precision: float | None = WHOLE_MODEL_PRECISION, min_seconds: float = 0.0) -> list[PairedRatio]:
        """Whole ``specs`` timed end to end through the table's own measurer (a device command
        included), each paired block by block with the table's reference model, with pairs
        added until each ratio is within +/- ``precision`` and passes spread over at least
        ``min_seconds`` (:data:`latency.paired.WHOLE_MODEL_SECONDS` for a check that decides)."""
        manifest = self.table.manifest
        return measure_specs(measurer_from_recorded(manifest["measurer"]), specs, parse_spec(manifest["reference"]["spec"]),
                             passes=passes, precision=precision, min_seconds=min_seconds)

    def measure_ms(self, specs: Sequence[ArchSpec], *, passes: int = 2, min_seconds: float = 0.0,
                   precision: float | None = WHOLE_MODEL_PRECISION) -> list[float]:
        """:meth:`measure` in the table's units (the ratio times its baseline), comparable with
        its predictions whatever this machine's speed is now."""
        baseline = float(self.table.reference_baseline_ms)
        return [r.in_units_of(baseline)
                for r in self.measure(specs, passes=passes, min_seconds=min_seconds, precision=precision)]

    def measure_like_ms(self, specs: Sequence[ArchSpec], like: ArchSpec, like_ms: float, *,
                        passes: int = 2, min_seconds: float = 0.0,
                        precision: float | None = WHOLE_MODEL_PRECISION) -> list[float]:
        """Whole ``specs`` timed through the table's measurer paired with ``like`` (a model alike
        in size, e.g. a pipeline's budget model) and given as the ratio times ``like_ms``, its
        latency in the table's units. A small model and the table's larger reference do not keep
        their ratio when the machine's load changes (under the load injector MobileNetV3-Small
        read 0.34x to 0.45x the reference in four runs of the same pipeline); two models alike
        do."""
        measurer = measurer_from_recorded(self.table.manifest["measurer"])
        results = measure_specs(measurer, specs, like, passes=passes, precision=precision, min_seconds=min_seconds)
        return [float(like_ms) * r.ratio for r in results]

    def missing_keys(self, specs: Iterable[ArchSpec]) -> set:
        return {key for spec in specs for key in spec_keys(spec) if key not in self.table}

    def ensure(self, specs: Sequence[ArchSpec]) -> int:
        """Measure the keys of ``specs`` the table lacks; returns how many were measured."""
        missing = self.missing_keys(specs)
        if not missing:
            return 0
        for resolution in sorted({spec.resolution for spec in specs}):
            self.table.calibration(resolution)  # fail before measuring anything
        if self.drift.other_hardware:
            why = "; ".join(self.drift.differences) or f"signature {self.drift.signature_error:.1%} off"
            raise TableMismatchError(f"table {self.folder} was measured on other hardware ({why}): "
                                     "cannot add this machine's layers to it")
        count = self._builder_for().measure_keys(missing)
        self.measured_keys += count
        self._reload()
        return count

    def _builder_for(self) -> TableBuilder:
        if self._builder is None:
            manifest = self.table.manifest
            self._builder = TableBuilder(self.folder, measurer_from_recorded(manifest["measurer"]),
                                         parse_spec(manifest["reference"]["spec"]), space=manifest["space"],
                                         config=self.config, progress=self.progress)
        return self._builder

    def _reload(self) -> None:
        table = load_table(self.folder, force=True)
        self._unscaled = table
        self.table = rescaled(table, self.drift.ratio, self.drift) if self.drift.action == "rescaled" else table


def default_measurer() -> Measurer:
    """The measurer of tables a job builds by itself when no platform is named: ONNX Runtime CPU,
    one thread, 5 warm-up and 20 timed runs (the settings of the built-in platform ``ort-cpu-1t``)."""
    return OrtMeasurer(OrtSettings(warmup=5, repeats=20))


def _space_factory(space: str | SpaceFactory) -> tuple[str, SpaceFactory]:
    if callable(space):
        return str(getattr(space, "name", getattr(space, "__name__", "custom"))), space
    if space not in LAZY_SPACES:
        raise ValueError(f"unknown space {space!r}; expected one of {sorted(LAZY_SPACES)}")
    return space, LAZY_SPACES[space]


def ensure_table(folder: str | Path, *, space: str | SpaceFactory, resolution: int, in_channels: int = 3,
                 num_classes: int = 1000, measurer: Measurer | None = None, calibration_specs: int = LAZY_CALIBRATION_SPECS,
                 calibration_rounds: int = LAZY_CALIBRATION_ROUNDS, seed: int = 0,
                 progress: Progress | None = None) -> tuple[Path, str]:
    """A table in ``folder`` usable for ``space`` at ``resolution`` with this input shape.

    Reuses a finished table there when its space, input shape, calibrated resolution,
    fingerprint and measurer settings match; resumes an unfinished one; otherwise builds a
    lazy one: the reference model plus ``calibration_specs`` sampled specs and the
    :data:`ANCHOR_MODELS` measured whole (and their layers). Returns the folder and a one-line message saying which.

    Raises:
        TableMismatchError: a table in ``folder`` was made for another space, input shape,
            hardware or measurer settings.
    """
    folder = Path(folder)
    name, factory = _space_factory(space)
    measurer = measurer or default_measurer()
    space_obj = factory(resolution=resolution, in_channels=in_channels, num_classes=num_classes)
    shape = {"in_channels": int(in_channels), "num_classes": int(num_classes)}
    if (folder / MANIFEST_FILE).exists():
        manifest = read_manifest(folder)
        _check_reusable(folder, manifest, name, shape, measurer)
        if manifest.get("reference", {}).get("baseline_ms") and str(resolution) in manifest.get("calibration", {}):
            return folder, (f"reusing the latency table in {folder} ({manifest.get('entries', '?')} entries, "
                            f"calibrated at {', '.join('r' + r for r in sorted(manifest['calibration'], key=int))})")
    start = time.perf_counter()
    resumed = (folder / MANIFEST_FILE).exists()
    specs = sample_specs(space_obj, calibration_specs, seed) + anchor_specs(resolution, in_channels, num_classes)
    reference = sample_specs(space_obj, 1, seed + 10_000)[0]
    builder = TableBuilder(folder, measurer, reference, space=name, progress=progress,
                           config=BuildConfig(calibration_rounds=calibration_rounds, max_passes=LAZY_MAX_PASSES),
                           space_input=(in_channels, num_classes))
    builder.measure_calibration(specs)
    table = builder.finish()
    verb = "resumed" if resumed else "built"
    return folder, (f"{verb} a lazy latency table in {folder} ({len(table)} layers, {len(specs)} calibration specs at "
                    f"r{resolution}, {time.perf_counter() - start:.0f} s); missing layers are measured as specs need them")


def _check_reusable(folder: Path, manifest: dict, space: str, shape: dict, measurer: Measurer) -> None:
    """Raise :class:`TableMismatchError` naming what makes the table in ``folder`` unusable here."""
    recorded_shape = manifest.get("input", {"in_channels": 3, "num_classes": 1000})
    if manifest.get("space") != space or recorded_shape != shape:
        raise TableMismatchError(f"table {folder} is for space {manifest.get('space')!r} with input {recorded_shape}, "
                                 f"not {space!r} with {shape}: give another table folder")
    check_manifest(manifest, measurer.settings_dict(), folder, force=False)
