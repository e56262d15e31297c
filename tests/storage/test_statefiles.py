"""The state-file layer: atomic JSON, schema-checked reads, append-only CSV with torn-tail repair."""
import json

import pytest

from storage.statefiles import CsvLog, StateFileError, read_json, repair_torn_tail, write_json


def test_write_json_is_atomic_and_strict(tmp_path):
    path = tmp_path / "state.json"
    write_json(path, {"a": 1, "b": float("nan"), "c": [float("inf")]})
    assert json.loads(path.read_text()) == {"a": 1, "b": None, "c": [None]}
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_write_json_keeps_the_old_file_when_serialising_fails(tmp_path):
    path = tmp_path / "state.json"
    write_json(path, {"a": 1})
    with pytest.raises(TypeError):
        write_json(path, {"a": object()})
    assert json.loads(path.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


@pytest.mark.parametrize("text, message", [
    ("[1, 2]", "is a list; expected a JSON object"),
    ('"hello"', "is a string; expected a JSON object"),
    ("{not json", "not valid JSON"),
    ('{"schema_version": 2, "x": 1}', "schema_version 2 is not supported; expected 1"),
    ('{"schema_version": 1}', "field 'x' is missing"),
    ('{"schema_version": 1, "x": "one"}', "field 'x' is a string; expected an integer"),
    ('{"schema_version": 1, "x": true}', "field 'x' is true/false; expected an integer"),
])
def test_read_json_names_file_and_field(tmp_path, text, message):
    path = tmp_path / "m.json"
    path.write_text(text)
    with pytest.raises(StateFileError, match=message) as info:
        read_json(path, fields={"x": int}, schema_version=1)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_read_json_missing_and_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_json(tmp_path / "absent.json")
    with pytest.raises(StateFileError, match="is a folder"):
        read_json(tmp_path)


def test_read_json_accepts_int_for_float(tmp_path):
    path = tmp_path / "m.json"
    path.write_text('{"ms": 3}')
    assert read_json(path, fields={"ms": float})["ms"] == 3


def test_csv_log_appends_and_reads(tmp_path):
    log = CsvLog(tmp_path / "t.csv", ("id", "latency_ms"))
    log.append([{"id": "a", "latency_ms": 1.5}])
    log.append([{"id": "b", "latency_ms": 2.5}])
    frame = log.read()
    assert frame["id"].tolist() == ["a", "b"] and frame["latency_ms"].tolist() == [1.5, 2.5]


def test_torn_tail_is_cut_off_before_append_and_kept_aside(tmp_path):
    path = tmp_path / "t.csv"
    log = CsvLog(path, ("id", "latency_ms"))
    log.append([{"id": "a", "latency_ms": 1.5}])
    with path.open("a") as handle:
        handle.write("b,2.")  # a kill mid-write
    assert log.read()["id"].tolist() == ["a"]
    log.append([{"id": "c", "latency_ms": 3.0}])
    assert log.read()["id"].tolist() == ["a", "c"]
    assert (tmp_path / "t.csv.torn").read_text() == "b,2.\n"


def test_repair_without_any_newline_cuts_everything(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("id,lat")
    assert repair_torn_tail(path) == "id,lat"
    assert path.read_text() == ""
    assert repair_torn_tail(path) is None


def test_csv_log_rejects_foreign_header_and_bad_rows(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("x,y\n1,2\n")
    log = CsvLog(path, ("id", "latency_ms"))
    with pytest.raises(StateFileError, match="header"):
        log.read()
    with pytest.raises(StateFileError, match="header"):
        log.append([{"id": "a", "latency_ms": 1.0}])
    path.write_text("id,latency_ms\na,1.0\nb,2.0,9\nc,3.0\n")
    with pytest.raises(StateFileError, match="line 3 has 3 fields"):
        log.read()
    with pytest.raises(ValueError, match="unknown columns"):
        log.append([{"id": "a", "oops": 1}])


def _full_disk(monkeypatch):
    import errno
    import os

    def fsync(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", fsync)


def test_write_json_on_a_full_disk_is_one_line_and_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "state.json"
    write_json(path, {"a": 1})
    _full_disk(monkeypatch)
    with pytest.raises(OSError, match="cannot write .*state.json: No space left on device; the previous contents") as info:
        write_json(path, {"a": 2})
    assert info.value.errno == 28 and "\n" not in str(info.value)
    monkeypatch.undo()
    assert json.loads(path.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_csv_append_on_a_full_disk_writes_nothing(tmp_path, monkeypatch):
    path = tmp_path / "t.csv"
    log = CsvLog(path, ("id", "latency_ms"))
    log.append([{"id": "a", "latency_ms": 1.5}])
    before = path.read_bytes()
    _full_disk(monkeypatch)
    with pytest.raises(OSError, match="No space left on device"):
        log.append([{"id": "b", "latency_ms": 2.5}, {"id": "c", "latency_ms": 3.5}])
    monkeypatch.undo()
    assert path.read_bytes() == before
    log.append([{"id": "d", "latency_ms": 4.0}])
    assert log.read()["id"].tolist() == ["a", "d"]


def test_csv_rewrite_replaces_the_table(tmp_path):
    log = CsvLog(tmp_path / "t.csv", ("id", "latency_ms"))
    log.append([{"id": "a", "latency_ms": 1.5}, {"id": "b", "latency_ms": 2.5}])
    log.rewrite([{"id": "z", "latency_ms": 9.0}])
    assert log.read()["id"].tolist() == ["z"]


def test_csv_read_of_binary_garbage_or_a_torn_header(tmp_path):
    path = tmp_path / "t.csv"
    log = CsvLog(path, ("id", "latency_ms"))
    path.write_bytes(b"\xff\xfe\x00garbage\n")
    with pytest.raises(StateFileError, match="not a text CSV"):
        log.read()
    path.write_text("id,lat")  # killed while writing the header
    assert len(log.read()) == 0
    log.append([{"id": "a", "latency_ms": 1.0}])
    assert log.read()["id"].tolist() == ["a"]
    with pytest.raises(StateFileError, match="is a folder"):
        CsvLog(tmp_path, ("id",)).read()
