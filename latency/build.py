"""Building latency tables: for a whole search space or lazily for the specs a search asks about.

Every figure is in *reference units* (paired timing, :mod:`latency.paired`): each layer key is
timed in short blocks alternating with blocks of the table's reference model (ONNX Runtime; a
measurer without a session held open, such as a device command, brackets the key between two
reference blocks instead), and its figure is the median of the per-pair ratios; whole models
are paired run by run with the reference. Stored values are
those ratios times the baseline (the reference's median over the build), i.e. milliseconds at
the build's speed, so a slow minute during the build leaves no mark. Layer keys are measured in
batches appended to ``entries.csv`` as soon as each is done, so a build killed mid-way resumes
where it stopped, and a resumed or lazily extended table is measured with the settings its
manifest recorded (``build``), so that every entry means the same whatever the code's defaults
became since (reference blocks are sized by the reference's run time when a table is begun).
Then the calibration specs are measured end to end (appended one group at a time), the
calibration of :mod:`latency.calibration` is fitted per resolution, and the machine's signature
(:mod:`latency.signature`) is recorded in the manifest.
What keeps a full build short: the legacy exporter (~11 ms per block),
one export per key whose sessions serve every pass, few repeats (20 after 5 warm-ups) with
more only where the spread of a key's samples is wide, no per-run output copies (io_binding),
and whole models measured only for the calibration specs.
"""
from __future__ import annotations

import logging
import math
import time
from contextlib import contextmanager
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np

from latency.calibration import fit_calibration, spec_features
from latency.command import MeasureCommandError
from latency.doctor import quick_doctor
from latency.drift import record_signature
from latency.endtoend import cached_model, measure_specs, spec_input_shape
from latency.fingerprint import device_fingerprint
from latency.key_timing import FIXED_REFERENCE_BLOCK, BuildConfig, measure_key, recorded_config, reference_block_runs
from latency.keys import KEY_COLUMNS, LayerKey, key_from_row, spec_keys
from latency.measurers import Measurer, OrtMeasurer
from latency.paired import CLOCK_ADVICE, BlockRunner, block_runner, fastest
from latency.table import (CALIBRATION_COLUMNS, CALIBRATION_FILE, ENTRIES_FILE, ENTRY_COLUMNS, MANIFEST_FILE,
                           REFERENCE_FILE, SCHEMA_VERSION, LatencyTable, TableMismatchError, append_rows, check_manifest, entry_baseline, finalize_entries,
                           calibration_specs, check_calibration_rows, check_entries, read_csv, read_manifest, write_json)
from storage.statefiles import StateFileError
from search_spaces.encoding import format_spec, parse_spec
from search_spaces.spec import ArchSpec

log = logging.getLogger(__name__)
SIZING_RUNS = 10
"""Runs of the reference whose fastest sizes a new table's reference blocks."""
Progress = Callable[[str, int, int], None]
"""``progress(phase, done, total)``; phases ``layers`` and ``calibration``."""


def _check_fresh_folder(folder: Path) -> None:
    """A new manifest (with this machine's fingerprint) is written only where no measurements
    are: entries measured elsewhere must never be vouched for by this machine."""
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(f"--out {str(folder)!r} is a file; expected a latency table folder")
    left = [name for name in (ENTRIES_FILE, REFERENCE_FILE, CALIBRATION_FILE) if (folder / name).exists()]
    if left:
        raise StateFileError(f"{folder} holds {', '.join(left)} but no {MANIFEST_FILE}: the hardware they were measured "
                             "on cannot be checked; restore the manifest or build into an empty folder")


class BuildInterrupted(MeasureCommandError):
    """A measure command failed during a build; the message says what the table kept."""


class TableBuilder:
    """Creates or resumes the table in ``folder`` for ``measurer``; see the module docstring."""

    def __init__(self, folder: str | Path, measurer: Measurer, reference_spec: ArchSpec, *, space: str,
                 config: BuildConfig | None = None, progress: Progress | None = None, force: bool = False,
                 space_input: tuple[int, int] | None = None) -> None:
        """``space_input``: the space's ``(in_channels, num_classes)``, recorded as ``input``."""
        self.folder = Path(folder)
        self.measurer = measurer
        self.config = BuildConfig() if config is None else config
        self.progress = progress or (lambda phase, done, total: None)
        self.reference_spec, self._run_reference = reference_spec, None
        self.manifest = self._open(space, reference_spec, force)
        self.config = self._recorded_config()
        self._record_input(space_input, force)
        self.reference_spec = parse_spec(self.manifest["reference"]["spec"])
        self.history_ms = read_csv(self.folder / REFERENCE_FILE, ("time", "ref_ms"))["ref_ms"].astype(float).tolist()

    def _open(self, space: str, reference_spec: ArchSpec, force: bool) -> dict:
        if (self.folder / MANIFEST_FILE).exists():
            manifest = read_manifest(self.folder)
            check_manifest(manifest, self.measurer.settings_dict(), self.folder, force)
            log.info("resuming the table in %s", self.folder)
            return manifest
        _check_fresh_folder(self.folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        manifest = {"schema_version": SCHEMA_VERSION, "space": space, "measurer": self.measurer.settings_dict(),
                    "fingerprint": device_fingerprint(self.measurer.settings_dict().get("device_id")), "build": self._build_record(),
                    "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                    "reference": {"spec": format_spec(reference_spec), "baseline_ms": None}, "calibration": {}}
        write_json(self.folder / MANIFEST_FILE, manifest)
        return manifest

    def _recorded_config(self) -> BuildConfig:
        """The config with the measuring settings the manifest recorded (a resumed table is
        measured as it was begun)."""
        try:
            return recorded_config(self.manifest.get("build", {}), self.config)
        except (TypeError, ValueError) as error:
            raise StateFileError(f"{self.folder / MANIFEST_FILE}: its recorded build settings are not valid ({error}); "
                                 "restore the manifest or build into an empty folder") from error

    def _build_record(self) -> dict[str, object]:
        """The build settings as recorded; keys are interleaved only where the measurer holds a
        session open between blocks (ONNX Runtime), else bracketed."""
        record = asdict(self.config)
        if not isinstance(self.measurer, OrtMeasurer):
            record["key_timing"] = "bracketed"
        if record["reference_block"] is None:
            record["reference_block"] = self._sized_reference_block()
        return record

    def _sized_reference_block(self) -> int:
        """Reference runs per block for a new table: enough to last
        :data:`latency.key_timing.REFERENCE_BLOCK_MS` by the reference's fastest of a few runs
        (a measurer that runs one block per call, with its own repeats, keeps the fixed count)."""
        if getattr(self.measurer, "runner", None) is None:
            return FIXED_REFERENCE_BLOCK
        return reference_block_runs(fastest(self._reference_runner()(SIZING_RUNS)))

    def _record_input(self, space_input: tuple[int, int] | None, force: bool) -> None:
        if space_input is None:
            return
        given = {"in_channels": int(space_input[0]), "num_classes": int(space_input[1])}
        recorded = self.manifest.get("input")
        if recorded is not None and recorded != given and not force:
            raise TableMismatchError(f"table {self.folder} was built for input {recorded}, not {given}; "
                                     f"use another --out folder")
        if recorded is None:
            self.manifest["input"] = given
            write_json(self.folder / MANIFEST_FILE, self.manifest)

    def _reference_runner(self) -> BlockRunner:
        if self._run_reference is None:
            model = cached_model(self.measurer, self.reference_spec)
            self._run_reference = block_runner(self.measurer, model, spec_input_shape(self.reference_spec))
        return self._run_reference

    def _reference_block(self) -> float:
        """The reference's fastest run of one short block (ms; a preempted run is dropped, as in
        :mod:`latency.paired`)."""
        value = fastest(self._reference_runner()(self.config.reference_block))
        if not math.isfinite(value):
            raise ValueError(f"the reference model's runs all read 0 ms ({CLOCK_ADVICE})")
        self.history_ms.append(value)
        return value

    def _record_reference(self, values: Sequence[float]) -> None:
        now = time.time()
        append_rows(self.folder / REFERENCE_FILE, ("time", "ref_ms"), [{"time": now, "ref_ms": v} for v in values])

    def _measure_paired_key(self, key: LayerKey, before: float | None) -> tuple[dict[str, object], float | None]:
        """One key in reference units (paired timing). Interleaved: the key's blocks alternate
        with the reference's and ``ref_ms`` is the reference's median among them. Bracketed: the
        key between two reference blocks, ``ref_ms`` their mean; ``before`` is the block that
        ended the previous key (a device command is called once per block, not twice)."""
        if self.manifest["build"].get("key_timing", "bracketed") == "interleaved":
            row = measure_key(self.measurer, key, self.config, self._reference_runner())
            self.history_ms.append(row["ref_ms"])
            self._record_reference([row["ref_ms"]])
            return row, None
        measured = [] if before is not None else [before := self._reference_block()]
        row = measure_key(self.measurer, key, self.config)
        after = self._reference_block()
        self._record_reference((*measured, after))
        return {**row, "ref_ms": (before + after) / 2}, after

    def measured_keys(self) -> set[LayerKey]:
        frame = read_csv(self.folder / ENTRIES_FILE, ENTRY_COLUMNS)
        check_entries(frame, self.folder / ENTRIES_FILE)
        return {key_from_row(row) for row in frame[list(KEY_COLUMNS)].to_dict("records")}

    def measure_keys(self, keys: Iterable[LayerKey]) -> int:
        """Measure the keys not yet in the table; returns how many were measured."""
        done = self.measured_keys()
        todo = sorted(set(keys) - done)
        total = len(todo)
        self.progress("layers", 0, total)
        before = None
        with self._resumable():
            for first in range(0, total, self.config.batch_keys):
                batch, start, rows = todo[first:first + self.config.batch_keys], time.perf_counter(), []
                try:
                    for key in batch:
                        row, before = self._measure_paired_key(key, before)
                        rows.append(row)
                finally:  # a failing device or Ctrl-C keeps the rows measured before it
                    self._append_entries(rows, len(done) + first, start)
                self.progress("layers", first + len(batch), total)
        self._check_measured(todo)
        return total

    def _append_entries(self, rows: list[dict[str, object]], before: int, start: float) -> None:
        """Append a batch's ``rows`` (``before``: rows the table held before them) and count them."""
        if not rows:
            return
        append_rows(self.folder / ENTRIES_FILE, ENTRY_COLUMNS, rows)
        self.manifest["entries"] = before + len(rows)  # a shorter entries.csv was truncated
        self._record_build_time("layers_s", time.perf_counter() - start, self.manifest["entries"])

    @contextmanager
    def _resumable(self) -> Iterator[None]:
        """A failing measure command (a device that disconnected, garbage output) ends in one
        line saying what the table kept and how to go on."""
        try:
            yield
        except BuildInterrupted:
            raise
        except MeasureCommandError as exc:
            entries = len(read_csv(self.folder / ENTRIES_FILE, ENTRY_COLUMNS))
            specs = len(read_csv(self.folder / CALIBRATION_FILE, CALIBRATION_COLUMNS))
            raise BuildInterrupted(f"{exc}; the table {self.folder} keeps every row measured before (layers: {entries}, "
                                   f"calibration models: {specs}): reconnect the device or fix the command, then run "
                                   "the same command again to resume") from exc

    def _check_measured(self, keys: Sequence[LayerKey]) -> None:
        """Every key just measured must be in entries.csv: a build never reports success short."""
        missing = set(keys) - self.measured_keys()
        if missing:
            raise StateFileError(f"{self.folder / ENTRIES_FILE}: {len(missing)} of the {len(keys)} keys just measured are "
                                 f"missing (e.g. {min(missing).label()}); it was changed during the build, run it again")

    def ensure_specs(self, specs: Iterable[ArchSpec]) -> int:
        """Lazy building: measure the layers of ``specs`` that the table lacks."""
        return self.measure_keys(k for spec in specs for k in spec_keys(spec))

    def measure_calibration(self, specs: Sequence[ArchSpec]) -> None:
        """Measure end to end the calibration specs not measured yet (and their layers)."""
        self.ensure_specs(specs)
        done = calibration_specs(self.folder)
        todo = [s for s in specs if s not in done]
        with self._resumable():
            baseline = self.baseline_ms()
        self.progress("calibration", 0, len(todo))
        for first in range(0, len(todo), self.config.calibration_group):
            group, start = todo[first:first + self.config.calibration_group], time.perf_counter()
            with self._resumable():
                results = measure_specs(self.measurer, group, self.reference_spec, pairs=self.config.calibration_pairs,
                                        passes=self.config.calibration_rounds)
            self.history_ms.extend(r.reference_ms for r in results)
            self._record_reference([r.reference_ms for r in results])
            append_rows(self.folder / CALIBRATION_FILE, CALIBRATION_COLUMNS, [
                {"resolution": s.resolution, "spec": format_spec(s), "measured_ms": r.in_units_of(baseline),
                 "raw_ms": r.latency_ms, "ref_ratio": r.ratio, "rounds": r.pairs, "baseline_ms": baseline}
                for s, r in zip(group, results)])
            self._record_build_time("calibration_s", time.perf_counter() - start, len(done) + first + len(group))
            self.progress("calibration", first + len(group), len(todo))

    def baseline_ms(self) -> float:
        """The table's unit: the reference's median over every block measured so far (one
        measured now if none). Entries and whole models are ratios to the reference times it."""
        if not self.history_ms:
            self._record_reference([self._reference_block()])
        return float(np.median(self.history_ms))

    def _calibration_targets(self, group, baseline: float) -> list[float]:
        """Whole-model figures of a calibration group in the table's units: paired ratios times
        the final baseline (tables from before paired timing: their recorded ms, rescaled from the
        baseline of their time where they were normalised)."""
        build = self.manifest.get("build", {})
        if build.get("timing") == "paired":
            return (group["ref_ratio"].astype(float) * baseline).tolist()
        measured = group["measured_ms"].astype(float)
        if "whole_model_quantile" not in build:
            measured = measured * baseline / group["baseline_ms"]
        return measured.tolist()

    def _record_build_time(self, name: str, seconds: float, count: int) -> None:
        """Add one batch's ``seconds`` and set the count measured so far (``count``, read from the
        files, so a build killed and resumed counts every key once); written per batch."""
        timings = self.manifest.setdefault("build_timings", {})
        timings[name] = round(timings.get(name, 0.0) + seconds, 2)
        timings[name.replace("_s", "_count")] = count
        write_json(self.folder / MANIFEST_FILE, self.manifest)

    def finish(self) -> LatencyTable:
        """Fix the reference baseline, fit the calibration per resolution, write the manifest.
        A table finished before keeps its baseline (its unit): completing a lazy table or adding
        a resolution then leaves every entry, figure and predictor fitted on it as it was."""
        if self.manifest["reference"].get("baseline_ms") is None:
            self.manifest["reference"]["baseline_ms"] = self.baseline_ms()
        self.manifest["reference"]["measurements"] = len(self.history_ms)
        raw = read_csv(self.folder / ENTRIES_FILE, ENTRY_COLUMNS)
        table = LatencyTable(self.folder, self.manifest, finalize_entries(raw, entry_baseline(self.manifest)))
        calib = read_csv(self.folder / CALIBRATION_FILE, CALIBRATION_COLUMNS)
        check_calibration_rows(calib, self.folder / CALIBRATION_FILE)
        baseline = self.manifest["reference"]["baseline_ms"]
        self.manifest["calibration"] = {}
        for resolution, group in calib.groupby("resolution"):
            specs = [parse_spec(s) for s in group["spec"]]
            features = [spec_features(table, spec_keys(s)) for s in specs]
            measured = self._calibration_targets(group, baseline)
            self.manifest["calibration"][str(int(resolution))] = fit_calibration(features, measured)
        self.manifest["entries"] = len(table)
        if self.manifest.get("build", {}).get("timing") == "paired" and "signature" not in self.manifest:
            with self._resumable():
                self.manifest["signature"] = record_signature(self.measurer, self.reference_spec)
                self.manifest["doctor"] = quick_doctor(self.measurer, self.reference_spec)
        timings = self.manifest.setdefault("build_timings", {})
        timings.update(layers_count=len(table), calibration_count=len(calib))  # a kill between append and record
        write_json(self.folder / MANIFEST_FILE, self.manifest)
        return LatencyTable(self.folder, self.manifest, table.entries)
