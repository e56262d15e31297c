"""Opening a table on this machine: other hardware is refused, another speed is measured.

A table's entries are only meaningful on the hardware that measured them (MobileNetV3 section 4).
Two checks tell other hardware from a slower moment of the same machine:

* the fingerprint (:mod:`latency.fingerprint`: CPU identity, ISA, caches, runtime), and
* the signature (:mod:`latency.signature`): paired ratios between fixed probe models, which a
  change of speed alone does not move; beyond ``tolerance`` they are measured once more and the
  pooled figure decides.

A mismatch on either is refused with one line (``on_drift="error"``), or the table is used
scaled by the measured speed (``rescale``) or as it is (``force``). The machine's speed is never
a reason to refuse: the reference's median now over its baseline at build is recorded as the
*speed factor*. Tables predict in their own units (milliseconds at the build's reference speed,
see :mod:`latency.table`), so every decision taken against a table is free of the factor; the
factor converts a prediction to milliseconds now where a report wants that.

Entry point for the search, NetAdapt and the pipeline: :func:`open_table`.
"""
from __future__ import annotations

import copy
import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from latency.calibration import TIME_EXPONENT
from latency.fingerprint import device_fingerprint, fingerprint_differences
from latency.measurers import Measurer
from latency.registry import measurer_from_recorded
from latency.signature import SIGNATURE_RESOLUTION, measure_signature, signature_error
from latency.table import SCHEMA_VERSION, LatencyTable, TableMismatchError, load_table, read_manifest
from search_spaces.encoding import format_spec, parse_spec
from search_spaces.spec import ArchSpec

log = logging.getLogger(__name__)
ON_DRIFT = ("error", "rescale", "force")
DEFAULT_TOLERANCE = 0.25
"""Largest relative change of a signature ratio on the same hardware: paired probe ratios
repeated within 9% (max/min) on a VM whose absolute speed swung 1.7x, and moved by up to 17%
with four other jobs on the same 2 cores and the load injector on top."""
SIGNATURE_ATTEMPTS = 3
"""Beyond the tolerance the signature is measured again, up to this many times in all, and the
attempt nearest the recorded one decides: a burst of load passes, other hardware stays."""


SIGNATURE_REUSE_S = 300.0
"""A signature this process measured with the same measurer settings and reference within this
many seconds is used again by the next opening instead of measured anew (2.6 s an opening under
the load injector on a 2-core AMD EPYC; a ``make demo`` opens its table about seven times). The
machine is the same and its speed swings from one second to the next, so a probe taken a minute
earlier is as good as a fresh one; an attempt beyond the tolerance is always measured again, and
the report says how old its probe is (``probed_s_ago``)."""
_recent_signatures: dict[str, tuple[float, dict[str, float], float]] = {}


def forget_signatures() -> None:
    """Drop the signatures kept for reuse (the next opening of every table measures its own)."""
    _recent_signatures.clear()


def _signature_now(measurer: Measurer, reference: ArchSpec, resolution: int | None,
                   reuse_s: float) -> tuple[dict[str, float], float, float]:
    """``measure_signature``'s ratios and reference time, and their age in seconds (0: measured now)."""
    key = json.dumps([measurer.settings_dict(), format_spec(reference), resolution], sort_keys=True, default=str)
    kept, now = _recent_signatures.get(key), time.monotonic()
    if kept is not None and now - kept[0] <= reuse_s:
        return dict(kept[1]), kept[2], now - kept[0]
    ratios, reference_ms = measure_signature(measurer, reference, resolution=resolution)
    _recent_signatures[key] = (time.monotonic(), dict(ratios), reference_ms)
    return ratios, reference_ms, 0.0


class DriftError(TableMismatchError):
    """The table's signature says other hardware or another runtime."""


@dataclass(frozen=True)
class DriftReport:
    """The check's outcome. ``ratio``: the speed factor (reference now / baseline);
    ``signature_error``: largest relative change of a probe ratio (None: the table records no
    signature); ``action``: ``ok``, ``rescaled`` (predictions x ``ratio``) or ``forced``;
    ``differences``: fingerprint fields that differ (empty on matching hardware); ``probed_s_ago``:
    the age of the probe used (0: measured by this opening; see :data:`SIGNATURE_REUSE_S`)."""

    baseline_ms: float
    measured_ms: float
    ratio: float
    tolerance: float
    action: str
    differences: tuple[str, ...] = ()
    signature_error: float | None = None
    signature: dict[str, float] = field(default_factory=dict)
    probed_s_ago: float = 0.0

    def to_dict(self) -> dict:
        return {**asdict(self), "differences": list(self.differences), "speed_factor": self.ratio}

    def describe(self) -> str:
        """One line, e.g. ``speed 1.34x the build's (reference 0.161 vs 0.120 ms); signature
        within 2.1% (tolerance 15%): ok``."""
        signature = ("no signature recorded (table predates paired timing)" if self.signature_error is None
                     else f"signature within {self.signature_error:.1%} (tolerance {self.tolerance:.0%})")
        age = f" (probed {self.probed_s_ago:.0f} s ago)" if self.probed_s_ago > 0 else ""
        return (f"speed {self.ratio:.2f}x the build's (reference {self.measured_ms:.4g} vs {self.baseline_ms:.4g} ms); "
                f"{signature}: {self.action}{age}")

    @property
    def other_hardware(self) -> bool:
        """Refused or forced as other hardware (a trusted table's signature never counts)."""
        return self.action != "ok"


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
        raise ValueError(f"drift tolerance = {tolerance!r} is not allowed; expected a fraction > 0 (0.15 = 15%)")


def open_table(folder: str | Path, *, tolerance: float = DEFAULT_TOLERANCE, on_drift: str = "error",
               trusted: bool = False, reuse_s: float = SIGNATURE_REUSE_S) -> tuple[LatencyTable, DriftReport]:
    """Load the table in ``folder`` for prediction after checking it describes this hardware.

    Args:
        tolerance: the largest allowed relative change of a signature ratio.
        on_drift: on other hardware, ``error`` (raise), ``rescale`` (scale predictions by the
            speed factor) or ``force`` (use the table as it is).
        trusted: the table was made by this run or command on this machine (its fingerprint is
            still checked): the signature is measured and recorded, never a reason to refuse it.
        reuse_s: a signature measured by this process within this many seconds is used again
            (0: always measure).
    Raises:
        TableMismatchError: the fingerprint differs and ``on_drift == "error"``.
        DriftError: the signature differs beyond ``tolerance`` and ``on_drift == "error"``.
    """
    _check_on_drift(tolerance, on_drift)
    folder = Path(folder)
    manifest = read_manifest(folder)
    if manifest.get("schema_version") != SCHEMA_VERSION:
        raise TableMismatchError(f"table {folder}: schema_version {manifest.get('schema_version')!r}, expected {SCHEMA_VERSION}")
    differences = tuple(fingerprint_differences(manifest.get("fingerprint", {}), device_fingerprint()))
    if differences and on_drift == "error":
        raise TableMismatchError(f"table {folder} was measured on other hardware or runtimes ({'; '.join(differences)}): "
                                 f"{_options(folder, manifest)}")
    table = load_table(folder, force=True)
    baseline = table.reference_baseline_ms
    if not baseline:
        raise ValueError(f"table {folder} has no reference baseline (its build did not finish): rerun its build to finish it")
    report = _check_signature(folder, manifest, float(baseline), tolerance, on_drift, differences, trusted, reuse_s)
    log.info("table %s: %s", folder, report.describe())
    if report.action == "rescaled":
        return rescaled(table, report.ratio, report), report
    table.manifest["drift"] = report.to_dict()
    return table, report


def _options(folder: Path, manifest: dict) -> str:
    return f"rebuild it here with {rebuild_hint(folder, manifest)}, or pass --rescale or --force to use it anyway"


def _check_signature(folder: Path, manifest: dict, baseline_ms: float, tolerance: float, on_drift: str,
                     differences: tuple[str, ...], trusted: bool, reuse_s: float) -> DriftReport:
    """Measure the signature and the speed factor; refuse other hardware unless told not to."""
    measurer = measurer_from_recorded(manifest["measurer"])
    reference = parse_spec(manifest["reference"]["spec"])
    recorded = manifest.get("signature", {}).get("ratios")
    resolution = manifest.get("signature", {}).get("resolution")  # None: recorded at the reference's own
    now, reference_ms, age = _signature_now(measurer, reference, resolution, reuse_s)
    error = signature_error(recorded, now) if recorded else None
    for _ in range(SIGNATURE_ATTEMPTS - 1):
        if error is None or error <= tolerance or trusted:
            break
        again, again_ms = measure_signature(measurer, reference, resolution=resolution)
        if signature_error(recorded, again) < error or age > 0:  # a kept probe never outvotes a fresh one
            now, reference_ms, error, age = again, again_ms, signature_error(recorded, again), 0.0
    mismatch = bool(differences) or (error is not None and error > tolerance and not trusted)
    if mismatch and on_drift == "error":
        raise DriftError(f"table {folder}: this machine's signature differs from the table's by {error:.1%} "
                         f"(tolerance {tolerance:.0%}; {_signature_line(recorded, now)}): other hardware or runtime; "
                         f"{_options(folder, manifest)}")
    action = "ok" if not mismatch else ("rescaled" if on_drift == "rescale" else "forced")
    return DriftReport(baseline_ms, reference_ms, reference_ms / baseline_ms, tolerance, action, differences, error, now,
                       age)


def _signature_line(recorded: dict[str, float], now: dict[str, float]) -> str:
    return ", ".join(f"{name} {recorded[name]:.3f} at build vs {now[name]:.3f} here" for name in recorded if name in now)


def record_signature(measurer: Measurer, reference: ArchSpec, *, resolution: int = SIGNATURE_RESOLUTION) -> dict:
    """The signature a build stores in its manifest (``signature``): probe ratios at
    ``resolution`` and ``reference``'s own time (ms)."""
    ratios, reference_ms = measure_signature(measurer, reference, resolution=resolution)
    return {"ratios": ratios, "reference_ms": reference_ms, "resolution": resolution}
