"""A latency table build killed (SIGKILL, a real process) at many points, then resumed: nothing
finished is lost (every complete row written before the kill is in the final files, byte for
byte), nothing finished is repeated (no key measured again once its row was complete), and the
result equals an uninterrupted build. ``tests/kill_child.py`` is the process that is killed.
"""
from __future__ import annotations

import csv
import io
import random
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from latency.keys import key_from_row
from latency.table import ENTRY_COLUMNS, load_table
from tests.fast_tables import small_builder, small_keys

REPO = Path(__file__).resolve().parents[1]
CSV_FILES = ("entries.csv", "reference.csv", "calibration.csv")


def _child(folder: Path, log: Path, kill: str | None = None, *, wait: float | None = None) -> int:
    command = [sys.executable, "-m", "tests.kill_child", "table", str(folder), str(log), *(["--kill", kill] if kill else [])]
    if wait is None:
        return subprocess.run(command, cwd=REPO, timeout=600, capture_output=True).returncode
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        process.wait(timeout=wait)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGKILL)
    return process.wait()


def _complete(path: Path) -> bytes:
    """The file up to its last newline: what a reader may rely on after a kill."""
    data = path.read_bytes() if path.exists() else b""
    return data[: data.rfind(b"\n") + 1]


def _labels(entries: bytes) -> list[str]:
    rows = list(csv.DictReader(io.StringIO(entries.decode())))
    return [key_from_row(row).label() for row in rows]


def _medians(folder: Path) -> dict[str, float]:
    table = load_table(folder, force=True)
    return {key.label(): table.lookup(key) for key in table.keys()}


@pytest.fixture(scope="module")
def straight(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("straight") / "table"
    assert _child(folder, folder.parent / "log") == 0
    return folder


def _check_resumed(folder: Path, kept: dict[str, bytes], resume_log: Path, straight: Path) -> None:
    for name, data in kept.items():
        assert _complete(folder / name).startswith(data), f"{name}: a row finished before the kill changed or vanished"
    remeasured = resume_log.read_text().split() if resume_log.exists() else []
    finished = set(_labels(kept["entries.csv"]))
    assert not finished & set(remeasured), "a key whose row was complete was measured again"
    assert len(remeasured) == len(set(remeasured))
    final = pd.read_csv(folder / "entries.csv")
    assert not final.duplicated(subset=list(ENTRY_COLUMNS[:13])).any()
    assert _medians(folder) == pytest.approx(_medians(straight), rel=1e-9)
    calibration = pd.read_csv(folder / "calibration.csv")
    assert sorted(calibration["spec"]) == sorted(pd.read_csv(straight / "calibration.csv")["spec"])
    manifest = load_table(folder, force=True).manifest
    assert manifest["entries"] == manifest["build_timings"]["layers_count"] == len(final)
    assert manifest["build_timings"]["calibration_count"] == len(calibration) == 2


@pytest.mark.slow
@pytest.mark.parametrize("kill", ["manifest.json:1:before", "entries.csv:1:after", "entries.csv:2:torn",
                                  "entries.csv:3:before", "reference.csv:2:torn", "calibration.csv:1:torn",
                                  "manifest.json:3:after", "manifest.json:9:before"])
def test_killed_build_resumes_losing_and_repeating_nothing(kill, tmp_path, straight):
    folder = tmp_path / "table"
    assert _child(folder, tmp_path / "log1", kill) == -signal.SIGKILL
    kept = {name: _complete(folder / name) for name in CSV_FILES}
    assert _child(folder, tmp_path / "log2") == 0
    _check_resumed(folder, kept, tmp_path / "log2", straight)
    if kill.endswith("torn") and kill.startswith(("entries", "calibration")):
        assert (folder / (kill.split(":")[0] + ".torn")).read_text().strip()


@pytest.mark.slow
def test_build_killed_three_times_then_resumed(tmp_path, straight):
    folder = tmp_path / "table"
    kept = {name: b"" for name in CSV_FILES}
    for run, kill in enumerate(["entries.csv:1:after", "entries.csv:2:torn", "calibration.csv:1:before"]):
        assert _child(folder, tmp_path / f"log{run}", kill) == -signal.SIGKILL
        now = {name: _complete(folder / name) for name in CSV_FILES}
        assert all(now[name].startswith(kept[name]) for name in CSV_FILES)
        kept = now
    assert _child(folder, tmp_path / "last") == 0
    _check_resumed(folder, kept, tmp_path / "last", straight)


@pytest.mark.slow
def test_build_killed_at_random_moments_then_resumed(tmp_path, straight):
    """Kills by the clock (anywhere: imports, a measurement, mid-write), three times."""
    folder, rng = tmp_path / "table", random.Random(0)
    kept = {name: b"" for name in CSV_FILES}
    for run in range(3):
        _child(folder, tmp_path / f"log{run}", wait=rng.uniform(3.0, 7.0))
        now = {name: _complete(folder / name) for name in CSV_FILES}
        assert all(now[name].startswith(kept[name]) for name in CSV_FILES)
        kept = now
    assert _child(folder, tmp_path / "last") == 0
    _check_resumed(folder, kept, tmp_path / "last", straight)


def test_torn_row_is_not_glued_onto_the_next_append(tmp_path):
    """The torn-row bug in-process (fast): a resumed build after a torn last row keeps every
    complete row and reports exactly the keys it was asked for."""
    keys = small_keys(8)
    small_builder(tmp_path).measure_keys(keys[:4])
    path = tmp_path / "entries.csv"
    complete = path.read_bytes()
    with path.open("ab") as handle:
        handle.write(complete.splitlines(keepends=True)[-1][:37])  # a kill mid-row
    measured = small_builder(tmp_path).measure_keys(keys)
    assert measured == 4 and path.read_bytes().startswith(complete)
    assert set(load_table(tmp_path, force=True).keys()) == set(keys)


def test_build_refuses_to_report_success_short(tmp_path, monkeypatch):
    """A row lost between the append and the check (e.g. the file edited meanwhile) fails the build."""
    from latency import build

    builder = small_builder(tmp_path)
    append = build.append_rows

    def lossy(path, columns, rows):
        rows = list(rows)
        append(path, columns, rows[:-1] if Path(path).name == "entries.csv" else rows)

    monkeypatch.setattr(build, "append_rows", lossy)
    with pytest.raises(ValueError, match="1 of the 4 keys just measured are missing"):
        builder.measure_keys(small_keys(4))


def test_build_timings_count_every_batch_across_kills(tmp_path):
    keys = small_keys(8)

    class Killed(Exception):
        pass

    def kill_after_first_batch(phase, done, total):
        if done == 4:
            raise Killed

    with pytest.raises(Killed):
        small_builder(tmp_path, progress=kill_after_first_batch).measure_keys(keys)
    small_builder(tmp_path).measure_keys(keys)
    timings = load_table(tmp_path, force=True).manifest["build_timings"]
    assert timings["layers_count"] == 8 and timings["layers_s"] > 0
