"""``mobilenas platform``: add, list, show, remove round trips, refused names and files, and
``latency build --platform`` (a fake measurer with the platform's settings: nothing is timed)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from latency.lazy import default_measurer
from latency.platforms import builtin_platforms, get_platform, platforms_home, table_key
from mobilenas.cli import main
from tests.platform_fakes import FAKE_SETTINGS, use_fake_measurer


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("MOBILENAS_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_add_list_show_remove_round_trip(capsys):
    code, out, err = run_cli(capsys, "platform", "add", "pixel-2t", "--measurer", "ort-cpu", "--threads", "2",
                             "--repeats", "7", "--description", "two threads")
    assert code == 0, err
    code, out, _ = run_cli(capsys, "platform", "list", "--json")
    listed = {p["name"]: p for p in json.loads(out)}
    assert set(builtin_platforms()) < set(listed)
    saved = listed["pixel-2t"]
    assert saved["measurer"] == "ort-cpu" and not saved["builtin"] and saved["description"] == "two threads"
    assert saved["settings"]["intra_op_threads"] == 2 and saved["settings"]["repeats"] == 7
    assert saved["settings"]["warmup"] == 5 and saved["tables"] == {}
    code, out, _ = run_cli(capsys, "platform", "show", "pixel-2t", "--json")
    assert code == 0 and json.loads(out) == saved
    code, out, _ = run_cli(capsys, "platform", "list")
    assert code == 0 and "pixel-2t" in out and "ort-cpu-int8" in out
    assert run_cli(capsys, "platform", "remove", "pixel-2t")[0] == 0
    code, _, err = run_cli(capsys, "platform", "show", "pixel-2t")
    assert code == 2 and "'pixel-2t' is not known" in err and len(err.strip().splitlines()) == 1


def test_every_builtin_is_listed_and_ort_cpu_1t_is_the_default_measurer(capsys):
    code, out, _ = run_cli(capsys, "platform", "list", "--json")
    builtins = {p["name"] for p in json.loads(out) if p["builtin"]}
    assert {"ort-cpu-1t", "ort-cpu-2t", "ort-cpu-int8", "torch-cpu"} <= builtins
    assert get_platform("ort-cpu-1t").settings_dict() == default_measurer().settings_dict()


@pytest.mark.parametrize("argv, message", [
    (["add", "ort-cpu-1t"], "is built in"),
    (["add", "ort-cpu-2t", "--threads", "3", "--replace"], "is built in"),
    (["add", "Bad Name"], "is not allowed"),
    (["add", "x", "--measurer", "command"], "needs --command"),
    (["add", "x", "--threads", "0"], "intra_op_threads = 0"),
    (["remove", "torch-cpu"], "built in"),
    (["doctor", "nope"], "'nope' is not known"),
])
def test_bad_requests_fail_in_one_line(capsys, home, argv, message):
    code, out, err = run_cli(capsys, "platform", *argv)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (home / "platforms" / "ort-cpu-1t.json").exists()


def test_a_taken_name_needs_replace(capsys):
    assert run_cli(capsys, "platform", "add", "mine", "--repeats", "9")[0] == 0
    code, _, err = run_cli(capsys, "platform", "add", "mine", "--repeats", "8")
    assert code == 2 and "--replace" in err
    assert run_cli(capsys, "platform", "add", "mine", "--repeats", "8", "--replace")[0] == 0
    assert get_platform("mine").settings["repeats"] == 8


@pytest.mark.parametrize("content, message", [
    ("{not json", "not valid JSON"),
    (json.dumps({"format": 99, "name": "odd"}), "not a MobileNAS platform file"),
    (json.dumps({"format": 1, "name": "odd", "measurer": "tflite"}), "measurer 'tflite' is not known"),
    (json.dumps({"format": 1, "name": "other", "measurer": "ort-cpu"}), "holds platform 'other'"),
])
def test_a_corrupt_or_foreign_file_is_refused_naming_it(capsys, content, message):
    path = platforms_home() / "odd.json"
    path.parent.mkdir(parents=True)
    path.write_text(content)
    for argv in (["list"], ["show", "odd"]):
        code, _, err = run_cli(capsys, "platform", *argv)
        assert code == 2 and str(path) in err and message in err and len(err.strip().splitlines()) == 1


def test_latency_build_with_platform_refuses_measurer_options(capsys, tmp_path):
    code, _, err = run_cli(capsys, "latency", "build", "--space", "mnasnet", "--resolution", "32", "--platform",
                           "ort-cpu-2t", "--threads", "1", "--out", str(tmp_path / "t"))
    assert code == 2 and "drop --threads" in err and not (tmp_path / "t").exists()


def test_latency_build_with_platform_records_its_settings_and_files_the_table(capsys, tmp_path, monkeypatch):
    platform = use_fake_measurer(monkeypatch)
    out = tmp_path / "table"
    code, printed, err = run_cli(capsys, "latency", "build", "--space", "mnasnet", "--resolution", "32", "--platform",
                                 platform.name, "--lazy", "--calibration-specs", "2", "--calibration-rounds", "1",
                                 "--quiet", "--out", str(out))
    assert code == 0, err
    recorded = json.loads((out / "manifest.json").read_text())["measurer"]
    assert {k: recorded[k] for k in FAKE_SETTINGS} == FAKE_SETTINGS and recorded["measurer"] == "torch-cpu"
    assert get_platform(platform.name).tables == {table_key("mnasnet", 32, 3, 1000): str(out.resolve())}
    assert "filed table" in printed
    code, out_json, _ = run_cli(capsys, "platform", "show", platform.name, "--json")
    assert json.loads(out_json)["tables"]


def test_platform_doctor_times_through_the_platforms_measurer(capsys, monkeypatch):
    platform = use_fake_measurer(monkeypatch)
    code, out, err = run_cli(capsys, "platform", "doctor", platform.name, "--windows", "2", "--probes", "2",
                             "--resolution", "32", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["verdict"] and len(report["paired_ratios"]) == 2
