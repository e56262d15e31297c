"""Drift probe: is this machine as fast as the one a latency table was built on?

A table's entries are only meaningful on the hardware that measured them (MobileNetV3
section 4). The fingerprint (:mod:`latency.fingerprint`) catches other hardware it can name;
the probe catches what it cannot (a host sold under the same CPU identity but clocked or
shared differently, FINDINGS.md: +16% on the same reference spec). Opening a table for
prediction times its reference model (a few short rounds, well under a second) and compares
its speed (a low percentile of the round medians; load from other jobs only adds time)
with the baseline recorded at build time, the same statistic over the build's measurements. Beyond a tolerance the
caller chooses: stop (the default, one line saying by how much this machine differs),
rescale every prediction by the measured ratio (recorded in the report and the manifest
copy), or force the table as it is.

Entry point for the search, NetAdapt and the pipeline: :func:`open_table`.
"""
from __future__ import annotations

import copy
import hashlib
import logging
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from latency.calibration import TIME_EXPONENT
from latency.endtoend import prepared_model, spec_input_shape
from latency.fingerprint import device_fingerprint, fingerprint_differences
from latency.measurers import Measurer, OrtMeasurer, TorchMeasurer, full_input_shape
from latency.registry import measurer_from_recorded
from latency.table import SCHEMA_VERSION, LatencyTable, TableMismatchError, load_table, read_manifest
from search_spaces.encoding import parse_spec
from search_spaces.onnx_export import DEFAULT_OPSET
from search_spaces.spec import ArchSpec

log = logging.getLogger(__name__)
ON_DRIFT = ("error", "rescale", "force")
PROBE_ROUNDS = 5
SPEED_QUANTILE = 5.0


class DriftError(ValueError):
    """This machine runs the table's reference model faster or slower than the tolerance allows."""


@dataclass(frozen=True)
class DriftReport:
    """The probe's outcome: ``ratio = measured_ms / baseline_ms``; ``action`` is ``ok``,
    ``rescaled`` (predictions multiplied by ``ratio``) or ``forced``; ``differences`` lists
    fingerprint fields that differ (empty on matching hardware)."""

    baseline_ms: float
    measured_ms: float
    ratio: float
    tolerance: float
    action: str
    differences: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {**asdict(self), "differences": list(self.differences)}

    def describe(self) -> str:
        """One line, e.g. ``reference 0.834 ms here vs 0.719 ms baseline (+16.0%): rescaled``."""
        return (f"reference {self.measured_ms:.4g} ms here vs {self.baseline_ms:.4g} ms baseline "
                f"({(self.ratio - 1) * 100:+.1f}%, tolerance {self.tolerance:.0%}): {self.action}")


def _cache_dir() -> Path:
    return Path(os.environ.get("MOBILENAS_CACHE_DIR") or Path.home() / ".cache" / "mobilenas") / "latency-reference"


def reference_model(measurer: Measurer, spec: ArchSpec) -> torch.nn.Module | bytes:
    """What ``measurer`` times for the reference ``spec``: ONNX bytes cached on disk (keyed
    by spec, batch, torch and opset; the ~0.5 s export would dominate the probe) or, for
    the torch measurer, the seeded module."""
    if isinstance(measurer, TorchMeasurer):
        return prepared_model(measurer, spec)
    from search_spaces.encoding import format_spec

    batch = int(measurer.settings_dict().get("batch", 1))
    digest = hashlib.sha256(f"{format_spec(spec)}|{batch}|{torch.__version__}|{DEFAULT_OPSET}".encode()).hexdigest()[:20]
    path = _cache_dir() / f"{digest}.onnx"
    if path.is_file():
        return path.read_bytes()
    data = prepared_model(measurer, spec)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_suffix(f".{os.getpid()}.tmp")
        temp.write_bytes(data)
        os.replace(temp, path)
    except OSError as exc:  # a read-only home only costs the export next time
        log.debug("cannot cache the reference model in %s: %s", path.parent, exc)
    return data


def reference_speed_ms(medians_ms: Sequence[float]) -> float:
    """The statistic a table's baseline and the probe share: the 5th percentile of the
    reference's per-measurement medians, the machine's speed when least disturbed (load only
    adds time; with the 25th percentile a probe in a quiet minute read 10% faster than the
    baseline of a build that had run under load)."""
    return float(np.percentile(np.asarray(medians_ms, dtype=float), SPEED_QUANTILE))


def probe_reference_ms(measurer: Measurer, spec: ArchSpec, rounds: int = PROBE_ROUNDS) -> float:
    """The reference model's speed now: :func:`reference_speed_ms` over ``rounds`` medians,
    each of ``repeats`` runs as the build measured them (ONNX Runtime: one session warmed up
    once; other measurers: one ``measure`` call per round)."""
    model = reference_model(measurer, spec)
    if not isinstance(measurer, OrtMeasurer):
        return reference_speed_ms([np.median(measurer.measure(model, spec_input_shape(spec))) for _ in range(rounds)])
    settings = measurer.settings
    runner = measurer.runner(model, full_input_shape(spec_input_shape(spec), settings.batch))
    runner.run(1, warmup=settings.warmup)
    return reference_speed_ms([np.median(runner.run(settings.repeats)) for _ in range(rounds)])


def rescaled(table: LatencyTable, ratio: float, report: DriftReport | None = None) -> LatencyTable:
    """A copy of ``table`` whose lookups and calibrated predictions are ``ratio`` times the
    original: entries and the reference baseline scaled, and the calibration's coefficients
    rescaled by ``ratio ** (1 - e)`` for a feature in ms^e (e = 0 for layers, params, MAdds),
    the intercept with them."""
    if not (ratio > 0 and math.isfinite(ratio)):
        raise ValueError(f"rescale ratio = {ratio!r} is not allowed; expected a finite number > 0")
    manifest = copy.deepcopy(table.manifest)
    for calibration in manifest.get("calibration", {}).values():
        calibration["coef"] = [c * ratio ** (1 - TIME_EXPONENT.get(name, 0))
                               for name, c in zip(calibration["features"], calibration["coef"])]
        calibration["intercept_ms"] = calibration["intercept_ms"] * ratio
    if manifest.get("reference", {}).get("baseline_ms"):
        manifest["reference"]["baseline_ms"] *= ratio
    if report is not None:
        manifest["drift"] = report.to_dict()
    entries = table.entries.copy()
    for column in ("median_ms", "cold_median_ms"):
        entries[column] = entries[column].astype(float) * ratio
    return LatencyTable(table.folder, manifest, entries)


def rebuild_hint(folder: Path, manifest: dict) -> str:
    """The build command that makes a table like ``manifest``'s on this machine."""
    resolutions = " ".join(sorted(manifest.get("calibration", {}), key=int)) or "R"
    shape = manifest.get("input", {})
    extra = "".join(f" --{flag} {shape[name]}" for flag, name in (("in-channels", "in_channels"), ("classes", "num_classes"))
                    if name in shape)
    return (f"`mobilenas latency build --space {manifest.get('space', 'SPACE')} --resolution {resolutions}{extra} "
            f"--out NEW_FOLDER` (resumable)")


def _check_on_drift(tolerance: float, on_drift: str) -> None:
    if on_drift not in ON_DRIFT:
        raise ValueError(f"on_drift = {on_drift!r} is not allowed; expected one of {ON_DRIFT}")
    if not (0 < tolerance < 10 and math.isfinite(tolerance)):
        raise ValueError(f"drift tolerance = {tolerance!r} is not allowed; expected a fraction > 0 (0.10 = 10%)")


def open_table(folder: str | Path, *, tolerance: float = 0.10, on_drift: str = "error") -> tuple[LatencyTable, DriftReport]:
    """Load the table in ``folder`` for prediction after checking it describes this machine.

    Args:
        tolerance: the largest allowed ``|measured / baseline - 1|`` of the reference model.
        on_drift: ``error`` (raise), ``rescale`` (scale predictions by the measured ratio) or
            ``force`` (use the table as it is); applies to other hardware too.
    Raises:
        TableMismatchError: the fingerprint differs and ``on_drift == "error"``.
        DriftError: the reference model is off by more than ``tolerance`` and ``on_drift == "error"``.
    """
    _check_on_drift(tolerance, on_drift)
    folder = Path(folder)
    manifest = read_manifest(folder)
    if manifest.get("schema_version") != SCHEMA_VERSION:
        raise TableMismatchError(f"table {folder}: schema_version {manifest.get('schema_version')!r}, expected {SCHEMA_VERSION}")
    differences = tuple(fingerprint_differences(manifest.get("fingerprint", {}), device_fingerprint()))
    options = f"rebuild it here with {rebuild_hint(folder, manifest)}, pass --rescale to scale its predictions, or --force"
    if differences and on_drift == "error":
        raise TableMismatchError(f"table {folder} was measured on other hardware or runtimes ({'; '.join(differences)}): "
                                 f"{options}")
    table = load_table(folder, force=True)
    baseline = table.reference_baseline_ms
    if not baseline:
        raise ValueError(f"table {folder} has no reference baseline (its build did not finish): rerun its build to finish it")
    measurer = measurer_from_recorded(manifest["measurer"])
    measured = _probe_confirmed(measurer, parse_spec(manifest["reference"]["spec"]), float(baseline), tolerance)
    ratio = measured / float(baseline)
    drifted = abs(ratio - 1) > tolerance
    if drifted and on_drift == "error":
        raise DriftError(f"table {folder}: this machine runs its reference model {abs(ratio - 1):.1%} "
                         f"{'slower' if ratio > 1 else 'faster'} than its build did ({measured:.4g} ms vs "
                         f"{baseline:.4g} ms baseline, tolerance {tolerance:.0%}): "
                         + options.replace("scale its predictions", f"scale its predictions by {ratio:.3f}"))
    action = "ok" if not (drifted or differences) else ("rescaled" if on_drift == "rescale" else "forced")
    report = DriftReport(float(baseline), measured, ratio, tolerance, action, differences)
    log.info("table %s: %s", folder, report.describe())
    if action == "rescaled":
        return rescaled(table, ratio, report), report
    table.manifest["drift"] = report.to_dict()
    return table, report


def _probe_confirmed(measurer: Measurer, spec: ArchSpec, baseline_ms: float, tolerance: float) -> float:
    """Probe; when outside the tolerance probe once more and keep the value nearer the
    baseline (a burst of load from other jobs passes; a real difference persists)."""
    first = probe_reference_ms(measurer, spec)
    if abs(first / baseline_ms - 1) <= tolerance:
        return first
    second = probe_reference_ms(measurer, spec)
    return min((first, second), key=lambda value: abs(math.log(value / baseline_ms)))
