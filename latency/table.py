"""Latency lookup tables on disk: entries (CSV, appended per batch) plus a JSON manifest.

Layout of a table folder::

    manifest.json     fingerprint, measurer settings, reference model, calibration per resolution
    entries.csv       one row per layer key: key fields, median_ms, p90_ms, std_ms, n, ...
    reference.csv     every measurement of the reference model (slow-period detection)
    calibration.csv   whole-model measurements of the calibration specs

Rows are appended and flushed per batch, so a build killed mid-way resumes losing nothing.
No pickles: CSV and JSON only. A missing key raises :class:`MissingKeyError`; using a
table measured elsewhere raises :class:`TableMismatchError` unless forced (STYLE.md section 4).
"""
from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from latency.fingerprint import device_fingerprint, fingerprint_differences
from latency.keys import KEY_COLUMNS, LayerKey, key_from_row

SCHEMA_VERSION = 1
MANIFEST_FILE, ENTRIES_FILE, REFERENCE_FILE, CALIBRATION_FILE = "manifest.json", "entries.csv", "reference.csv", "calibration.csv"
VALIDATION_FILE = "validation.json"
STAT_COLUMNS = ("median_ms", "raw_median_ms", "p90_ms", "std_ms", "n", "cold_median_ms", "raw_cold_median_ms", "cold_n",
                "copies", "ref_ms", "params", "madds")
ENTRY_COLUMNS = KEY_COLUMNS + STAT_COLUMNS
CALIBRATION_COLUMNS = ("resolution", "spec", "measured_ms", "raw_ms", "ref_ratio", "rounds", "baseline_ms")


class MissingKeyError(ValueError):
    """A layer key is not in the table (the table never interpolates)."""


class TableMismatchError(ValueError):
    """The table was measured on other hardware, runtimes or settings."""


def append_rows(path: Path, columns: Sequence[str], rows: Iterable[dict[str, object]]) -> None:
    """Append ``rows`` to the CSV at ``path`` (header written once), flushed and fsynced."""
    new = not path.exists() or path.stat().st_size == 0
    with path.open("a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns))
        if new:
            writer.writeheader()
        writer.writerows(rows)
        handle.flush()
        os.fsync(handle.fileno())


def read_csv(path: Path, columns: Sequence[str]) -> pd.DataFrame:
    """The CSV at ``path`` (an empty frame with ``columns`` when absent); a torn last line
    from a kill mid-write is dropped."""
    if not path.exists() or path.stat().st_size == 0:
        return pd.DataFrame(columns=list(columns))
    frame = pd.read_csv(path, on_bad_lines="skip")
    missing = set(columns) - set(frame.columns)
    if missing:
        raise ValueError(f"{path} lacks columns {sorted(missing)}; expected {list(columns)}")
    return frame.dropna(subset=[c for c in columns if c not in ("exp_channels",)]).reset_index(drop=True)


def write_json(path: Path, data: dict) -> None:
    """Write ``data`` atomically (temp file + rename)."""
    temp = path.with_suffix(".tmp")
    temp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(temp, path)


class LatencyTable:
    """A loaded table: ``lookup(key)`` in ms, ``keys_sum_ms(keys)``, manifest access."""

    def __init__(self, folder: Path, manifest: dict, entries: pd.DataFrame) -> None:
        self.folder = folder
        self.manifest = manifest
        self.entries = entries
        baseline = manifest.get("reference", {}).get("baseline_ms")
        records = entries.to_dict("records")
        self._values = {key_from_row(row): float(row["median_ms"]) for row in records}
        self._cold = {key_from_row(row): float(row["cold_median_ms"]) for row in records}
        self.reference_baseline_ms = baseline

    def __len__(self) -> int:
        return len(self._values)

    def __contains__(self, key: LayerKey) -> bool:
        return key in self._values

    def keys(self) -> list[LayerKey]:
        return list(self._values)

    def lookup(self, key: LayerKey) -> float:
        """The median latency (ms) of ``key``; raises :class:`MissingKeyError` when absent."""
        try:
            return self._values[key]
        except KeyError:
            raise MissingKeyError(f"layer {key.label()} is not in the table at {self.folder} "
                                  f"({len(self)} entries); build it for this space/resolution or measure lazily") from None

    def lookup_cold(self, key: LayerKey) -> float:
        """The in-context (weights cold) median of ``key`` (latency.incontext)."""
        self.lookup(key)
        return self._cold[key]

    def keys_sum_ms(self, keys: Iterable[LayerKey], *, cold: bool = False) -> float:
        get = self.lookup_cold if cold else self.lookup
        return float(sum(get(k) for k in keys))

    def calibration(self, resolution: int) -> dict:
        """The calibration fitted for input side ``resolution``."""
        found = self.manifest.get("calibration", {}).get(str(resolution))
        if found is None:
            known = sorted(int(r) for r in self.manifest.get("calibration", {}))
            raise MissingKeyError(f"the table at {self.folder} has no calibration for resolution {resolution}; "
                                  f"calibrated resolutions: {known}")
        return found


def check_manifest(manifest: dict, settings: dict[str, object] | None, folder: Path, force: bool) -> None:
    """Raise :class:`TableMismatchError` naming every difference unless ``force``."""
    if manifest.get("schema_version") != SCHEMA_VERSION:
        raise TableMismatchError(f"table {folder}: schema_version {manifest.get('schema_version')!r}, expected {SCHEMA_VERSION}")
    diffs = fingerprint_differences(manifest.get("fingerprint", {}), device_fingerprint(),
                                    manifest.get("measurer") if settings is not None else None, settings)
    if diffs and not force:
        raise TableMismatchError(f"table {folder} was measured elsewhere or with other settings: "
                                 + "; ".join(diffs) + " (pass --force to use it anyway)")


def read_manifest(folder: Path) -> dict:
    path = Path(folder) / MANIFEST_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: {folder} is not a latency table folder")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from exc


def finalize_entries(raw: pd.DataFrame, baseline_ms: float | None) -> pd.DataFrame:
    """Normalise each row's median to the reference baseline (slow-period correction) and
    keep the last row per key (a resumed build never duplicates, but be safe)."""
    frame = raw.drop_duplicates(subset=list(KEY_COLUMNS), keep="last").reset_index(drop=True)
    if baseline_ms and len(frame):
        scale = baseline_ms / frame["ref_ms"].astype(float)
        scale = scale.where(np.isfinite(scale), 1.0)
        frame["median_ms"] = frame["raw_median_ms"].astype(float) * scale
        frame["cold_median_ms"] = frame["raw_cold_median_ms"].astype(float) * scale
    return frame


def load_table(folder: str | Path, *, settings: dict[str, object] | None = None, force: bool = False) -> LatencyTable:
    """Load the table in ``folder``, checking the fingerprint (and ``settings`` if given)."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    check_manifest(manifest, settings, folder, force)
    entries = read_csv(folder / ENTRIES_FILE, ENTRY_COLUMNS)
    return LatencyTable(folder, manifest, finalize_entries(entries, manifest.get("reference", {}).get("baseline_ms")))
