"""Latency lookup tables on disk: entries (CSV, appended per batch) plus a JSON manifest.

Layout of a table folder::

    manifest.json     fingerprint, measurer settings, reference model, calibration per resolution
    entries.csv       one row per layer key: key fields, median_ms, p90_ms, std_ms, n, ...
    reference.csv     every measurement of the reference model (slow-period detection)
    calibration.csv   whole-model measurements of the calibration specs

Rows are appended and flushed per batch, so a build killed mid-way resumes losing nothing.
No pickles: CSV and JSON only. A missing key raises :class:`MissingKeyError`; using a
table measured elsewhere raises :class:`TableMismatchError` unless forced.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from latency.calibration import FEATURES
from latency.fingerprint import device_fingerprint, fingerprint_differences
from latency.keys import KEY_COLUMNS, LayerKey, key_from_row
from search_spaces.encoding import parse_spec
from search_spaces.spec import ArchSpec
from storage.statefiles import CsvLog, StateFileError, check_fields, read_json
from storage.statefiles import write_json as _write_json

SCHEMA_VERSION = 1
MANIFEST_FILE, ENTRIES_FILE, REFERENCE_FILE, CALIBRATION_FILE = "manifest.json", "entries.csv", "reference.csv", "calibration.csv"
VALIDATION_FILE = "validation.json"
STAT_COLUMNS = ("median_ms", "raw_median_ms", "p90_ms", "std_ms", "n", "cold_median_ms", "raw_cold_median_ms", "cold_n",
                "copies", "ref_ms", "params", "madds")
ENTRY_COLUMNS = KEY_COLUMNS + STAT_COLUMNS
CALIBRATION_COLUMNS = ("resolution", "spec", "measured_ms", "raw_ms", "ref_ratio", "rounds", "baseline_ms")
LATENCY_COLUMNS = ("median_ms", "raw_median_ms", "cold_median_ms", "raw_cold_median_ms", "ref_ms")
"""Entry columns that must be a latency > 0 ms in every row (a table never predicts <= 0)."""
MANIFEST_FIELDS = {"schema_version": int, "space": str, "measurer": dict, "fingerprint": dict, "reference": dict,
                   "calibration": dict}
CALIBRATION_FIELDS = {"features": list, "coef": list, "intercept_ms": float, "n_specs": int}
OPTIONAL_FIELDS = {"entries": int, "build_timings": dict, "build": dict, "input": dict}


class MissingKeyError(ValueError):
    """A layer key is not in the table (the table never interpolates)."""


class TableMismatchError(ValueError):
    """The table was measured on other hardware, runtimes or settings."""


def append_rows(path: Path, columns: Sequence[str], rows: Iterable[dict[str, object]]) -> None:
    """Append ``rows`` to the CSV at ``path`` (:class:`storage.statefiles.CsvLog`: header written
    once, a torn last row from a kill cut off first, fsynced)."""
    CsvLog(path, columns).append(rows)


def read_csv(path: Path, columns: Sequence[str]) -> pd.DataFrame:
    """The CSV at ``path`` (an empty frame with ``columns`` when absent); a torn last line
    from a kill mid-write is ignored. A foreign header, a malformed row or an empty cell is a
    :class:`StateFileError` naming the file and the line."""
    frame = CsvLog(path, columns).read()
    empty = frame.isna().to_numpy()
    if empty.any():
        row, column = map(int, np.argwhere(empty)[0])
        raise StateFileError(f"{path}: line {row + 2} has no value for {frame.columns[column]!r}")
    for column in (c for c in frame.columns if c.endswith("_ms") or c == "time"):
        numbers = pd.to_numeric(frame[column], errors="coerce")
        if numbers.isna().any():
            row = int(np.flatnonzero(numbers.isna().to_numpy())[0])
            raise StateFileError(f"{path}: line {row + 2}: {column} = {frame[column].iloc[row]!r} is not a number")
        frame[column] = numbers.astype(float)
    return frame


def write_json(path: Path, data: dict) -> None:
    """Write ``data`` atomically (temp file, fsync, rename: :func:`storage.statefiles.write_json`)."""
    _write_json(path, data, sort_keys=True)


def check_entries(frame: pd.DataFrame, path: Path) -> None:
    """Raise :class:`StateFileError` naming the line of the first entry whose key is invalid or
    whose latencies are not numbers > 0 ms."""
    for column in LATENCY_COLUMNS:
        values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float)
        bad = np.flatnonzero(~(np.isfinite(values) & (values > 0)))
        if len(bad):
            raw = frame[column].iloc[bad[0]]
            shown = raw if isinstance(raw, str) else float(raw)
            raise StateFileError(f"{path}: line {bad[0] + 2}: {column} = {shown!r} is not allowed; "
                                 "expected a latency > 0 ms")
    for number, row in enumerate(frame[list(KEY_COLUMNS)].to_dict("records"), start=2):
        try:
            key_from_row(row)
        except (ValueError, TypeError) as exc:
            raise StateFileError(f"{path}: line {number}: {exc}") from None


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
        value = self._cold.get(key)
        if value is None:
            self.lookup(key)  # a key the table lacks: MissingKeyError naming it
            return self._cold[key]
        return value

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
    """The table's manifest, its shape checked (:data:`MANIFEST_FIELDS`, the reference and
    every calibration); problems are one-line errors naming the file and the field."""
    folder = Path(folder)
    path = folder / MANIFEST_FILE
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a latency table folder (no such folder)")
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: {folder} is not a latency table folder")
    manifest = read_json(path, fields=MANIFEST_FIELDS, what="latency table manifest")
    check_fields(manifest["reference"], {"spec": str, "baseline_ms": (float, type(None))}, f"{path}: reference")
    _check_spec(manifest["reference"]["spec"], f"{path}: reference.spec")
    optional = {name: kind for name, kind in OPTIONAL_FIELDS.items() if name in manifest}
    check_fields(manifest, optional, str(path))
    for resolution, calibration in manifest["calibration"].items():
        where = f"{path}: calibration[{resolution!r}]"
        if not isinstance(calibration, dict):
            raise StateFileError(f"{where} is not an object; expected features, coef, intercept_ms, n_specs")
        check_fields(calibration, CALIBRATION_FIELDS, where)
        if not str(resolution).isdigit():
            raise StateFileError(f"{where}: the key is not a resolution; expected an integer such as '224'")
        if not all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in calibration["coef"]):
            raise StateFileError(f"{where}: field 'coef' holds a non-number; expected numbers")
        unknown = [f for f in calibration["features"] if f not in FEATURES]
        if unknown:
            raise StateFileError(f"{where}: features {unknown} are not known; expected some of {list(FEATURES)}")
        if len(calibration["features"]) != len(calibration["coef"]):
            raise StateFileError(f"{where}: {len(calibration['features'])} features but {len(calibration['coef'])} coef")
    return manifest


def _check_spec(text: str, where: str) -> None:
    try:
        parse_spec(text)
    except ValueError as exc:
        raise StateFileError(f"{where}: {exc}") from None


def check_calibration_rows(frame: pd.DataFrame, path: Path) -> None:
    """Every calibration row names a parseable spec and a measured latency > 0 ms."""
    for number, (spec, measured) in enumerate(zip(frame["spec"], frame["measured_ms"]), start=2):
        _check_spec(str(spec), f"{path}: line {number}: spec")
        if not measured > 0:
            raise StateFileError(f"{path}: line {number}: measured_ms = {measured!r} is not allowed; expected > 0 ms")


def calibration_specs(folder: Path) -> set[ArchSpec]:
    """The specs the table in ``folder`` measured whole for its calibration, parsed: a row written
    in an earlier spelling of the canonical string names the same spec as one written now. A row
    that does not parse is a :class:`StateFileError` naming the file and the line."""
    path = Path(folder) / CALIBRATION_FILE
    frame = read_csv(path, CALIBRATION_COLUMNS)
    check_calibration_rows(frame, path)
    return {parse_spec(s) for s in frame["spec"]}


def _check_complete(table: "LatencyTable", manifest: dict, path: Path) -> None:
    """A table holding fewer keys than its manifest recorded was truncated or edited."""
    recorded = manifest.get("entries")
    if isinstance(recorded, int) and not isinstance(recorded, bool) and len(table) < recorded:
        raise StateFileError(f"{path}: holds {len(table)} entries but the manifest records {recorded}; the file was "
                             "truncated or edited (resume its build on the same --out to measure the missing keys)")


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


def entry_baseline(manifest: dict) -> float | None:
    """The baseline entries are normalised to, or None when the build chose raw entries."""
    return manifest["reference"]["baseline_ms"] if manifest.get("build", {}).get("normalise_entries", True) else None


def load_table(folder: str | Path, *, settings: dict[str, object] | None = None, force: bool = False) -> LatencyTable:
    """Load the table in ``folder``, checking the fingerprint (and ``settings`` if given)."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    check_manifest(manifest, settings, folder, force)
    entries = read_csv(folder / ENTRIES_FILE, ENTRY_COLUMNS)
    check_entries(entries, folder / ENTRIES_FILE)
    table = LatencyTable(folder, manifest, finalize_entries(entries, entry_baseline(manifest)))
    _check_complete(table, manifest, folder / ENTRIES_FILE)
    return table
