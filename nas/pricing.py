"""Which latency table prices a search's candidates, and the record of it (MnasNet section 3:
latency is measured on the target device; MobileNetV3 section 4: per-layer tables).

The table must price exactly the spec that is trained (the stem and head keys carry the
input channels and class count): :func:`open_pricing` opens a given table through
:class:`latency.lazy.LazyPredictor` (fingerprint, drift probe, missing layers measured on
this machine and appended, this process the only writer), or, without one, copies a
matching table of an earlier search under ``--out`` into the run folder, or builds a lazy
one there (:func:`latency.lazy.ensure_table`).
"""
from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from latency.lazy import LazyPredictor, default_measurer, ensure_table
from latency.measurers import Measurer
from latency.table import MANIFEST_FILE, TableMismatchError, check_manifest, read_manifest
from search_spaces.encoding import format_spec, parse_spec
from search_spaces.spec import ArchSpec

log = logging.getLogger(__name__)
RUN_TABLE = "latency"
VALIDATION_KEYS = ("n", "within_5pct", "within_10pct", "mean_abs_err_pct", "p90_abs_err_pct", "spearman")


@dataclass(frozen=True)
class PricedShape:
    """The input shape the table prices: resolution, input channels, classes."""

    resolution: int
    in_channels: int
    num_classes: int

    def to_dict(self) -> dict[str, int]:
        return {"resolution": self.resolution, "in_channels": self.in_channels, "num_classes": self.num_classes}


def _usable(folder: Path, shape: PricedShape, space: str, measurer: Measurer | None = None) -> bool:
    """A finished table for ``space`` with this input shape, calibrated at its resolution, from
    this machine and ``measurer``'s settings (default: :func:`default_measurer`)."""
    try:
        manifest = read_manifest(folder)
        wanted = {"in_channels": shape.in_channels, "num_classes": shape.num_classes}
        if manifest.get("space") != space or manifest.get("input") != wanted:
            return False
        check_manifest(manifest, (measurer or default_measurer()).settings_dict(), folder, False)
    except (TableMismatchError, ValueError, FileNotFoundError, OSError):
        return False
    return bool(manifest.get("reference", {}).get("baseline_ms")) and str(shape.resolution) in manifest.get("calibration", {})


def find_matching_table(out: Path, shape: PricedShape, space: str, exclude: Path | None = None,
                        measurer: Measurer | None = None) -> Path | None:
    """The newest ``<out>/<run>/latency`` table usable for this shape and measurer, or None."""
    candidates = sorted(out.glob(f"*/{RUN_TABLE}/{MANIFEST_FILE}"), key=lambda p: p.stat().st_mtime, reverse=True)
    for manifest in candidates:
        folder = manifest.parent
        if exclude is not None and folder.resolve() == exclude.resolve():
            continue
        if _usable(folder, shape, space, measurer):
            return folder
    return None


def prepare_table(run_folder: Path, out: Path, shape: PricedShape, space: str, table: str | None,
                  measurer: Measurer | None = None) -> tuple[Path, str]:
    """The table folder to open and one line saying where it came from. Without ``table``, the
    run's own table (copied from a matching earlier run, or built lazily) is measured with
    ``measurer`` (default: :func:`default_measurer`)."""
    if table is not None:
        if not (Path(table) / MANIFEST_FILE).is_file():
            raise FileNotFoundError(f"--table {table!r} has no {MANIFEST_FILE}; expected a latency table folder")
        return Path(table), f"using the latency table {table} (missing layers are measured here and added to it)"
    own = run_folder / RUN_TABLE
    build = dict(space=space, resolution=shape.resolution, in_channels=shape.in_channels,
                 num_classes=shape.num_classes, measurer=measurer)
    if (own / MANIFEST_FILE).exists():
        return ensure_table(own, **build)
    match = find_matching_table(out, shape, space, exclude=own, measurer=measurer)
    if match is not None:
        shutil.copytree(match, own)
        return own, f"copied the matching latency table {match} into {own} (this run adds its missing layers there)"
    return ensure_table(own, **build)


def validation_figures(folder: Path) -> dict[str, Any] | None:
    """The table's validation report figures (``validation.json``), or None if never validated."""
    path = folder / "validation.json"
    if not path.is_file():
        return None
    report = json.loads(path.read_text())
    return {key: report.get(key) for key in VALIDATION_KEYS}


def open_pricing(folder: Path, *, on_drift: str = "error", trusted: bool = False) -> tuple[LazyPredictor, dict[str, Any]]:
    """A lazy predictor on ``folder`` and the manifest record of the table (path, entries,
    fingerprint match, hardware check, validation figures). ``trusted``: a table this run made or
    copied from an earlier run on this machine (no ``--table`` given)."""
    predictor = LazyPredictor(folder, on_drift=on_drift, trusted=trusted)
    manifest = predictor.table.manifest
    record = {"folder": str(folder), "entries": len(predictor.table), "space": manifest.get("space"),
              "input": manifest.get("input", {"in_channels": 3, "num_classes": 1000}),
              "calibrated_resolutions": sorted(manifest.get("calibration", {}), key=int),
              "measurer": manifest.get("measurer"), "drift": predictor.drift.to_dict(),
              "validation": validation_figures(folder)}
    return predictor, record


def price_function(predictor: LazyPredictor, price_by: str = "table", measure_like: str | None = None,
                   measure_like_ms: float | None = None) -> Callable[[ArchSpec], float]:
    """How the search prices a candidate, in the table's units. ``table``: the table's prediction.
    ``measured`` (MnasNet section 3): the whole model timed end to end through the table's
    measurer, paired with ``measure_like`` (a canonical spec string; its latency in the table's
    units ``measure_like_ms``) or, without it, with the table's reference; each spec once."""
    if price_by == "table":
        return predictor.predict_ms
    if price_by != "measured":
        raise ValueError(f"price_by {price_by!r} is not known; expected table or measured")
    like = None if measure_like is None else parse_spec(measure_like)
    measured: dict[str, float] = {}

    def price(spec: ArchSpec) -> float:
        key = format_spec(spec)
        if key not in measured:
            measured[key] = (predictor.measure_ms([spec])[0] if like is None else
                             predictor.measure_like_ms([spec], like, float(measure_like_ms))[0])
        return measured[key]

    return price
