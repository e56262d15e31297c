"""A platform behind a device command, end to end, with the stand-in device (latency.standin):
its output is read, a disconnect or garbage output mid-build ends in one line and keeps every
row, a rerun resumes, and a build killed by SIGKILL resumes losing and repeating nothing."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from latency.build import BuildConfig, TableBuilder
from latency.command import DEFAULT_PATTERN, CommandMeasurer, CommandSettings, MeasureCommandError, parse_latencies_ms
from latency.keys import key_from_row
from latency.validation import sample_specs
from search_spaces.builder import build_block
from search_spaces.onnx_export import export_module_onnx
from search_spaces.spec import BlockSpec
from tests.fast_tables import SPACE, small_builder, small_keys

REPO = Path(__file__).resolve().parents[2]
STANDIN = f"{sys.executable} -m latency.standin {{model}} --runs 3 --warmup 1"
SHAPE = (1, 16, 8, 8)


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    path = tmp_path / "block.onnx"
    path.write_bytes(export_module_onnx(build_block(16, BlockSpec("bneck", 3, 1, 32, 16)).eval(), SHAPE))
    return path


def _standin(*args: object, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "latency.standin", *map(str, args)], cwd=REPO, capture_output=True,
                          text=True, timeout=120, env=env)


def _builder(folder: Path, template: str = STANDIN) -> TableBuilder:
    """Layer keys through the stand-in, one batch (rows appended at the end unless a failure comes first)."""
    return TableBuilder(folder, CommandMeasurer(CommandSettings(template=template)), sample_specs(SPACE, 1, seed=99)[0],
                        space="mnasnet", config=BuildConfig(batch_keys=100, max_passes=1))


def _labels(folder: Path) -> list[str]:
    import csv

    with open(folder / "entries.csv") as handle:
        return [key_from_row(row).label() for row in csv.DictReader(handle)]


def test_standin_prints_one_parseable_timing_per_run(model_file):
    done = _standin(model_file, "--runs", 4, "--threads", 1, "--opt-level", "extended")
    assert done.returncode == 0, done.stderr
    samples = parse_latencies_ms(done.stdout, DEFAULT_PATTERN)
    assert len(samples) == 4 and len(done.stdout.strip().splitlines()) == 4 and min(samples) > 0


def test_standin_disconnects_from_the_kth_call_as_adb_does(model_file, tmp_path):
    state = tmp_path / "calls"
    first = _standin(model_file, "--fault", "disconnect@2", "--state", state)
    second = _standin(model_file, "--fault", "disconnect@2", "--state", state)
    assert first.returncode == 0 and second.returncode == 1
    assert second.stderr.strip() == "error: device 'standin-0' not found" and not second.stdout


@pytest.mark.parametrize("kind, shown", [("text", "no latency"), ("nan", "'inference: nan ms'"),
                                         ("negative", "'inference: -0.4123 ms'")])
def test_garbage_output_is_refused_in_one_line_naming_it(kind, shown, model_file):
    measurer = CommandMeasurer(CommandSettings(template=f"{STANDIN} --fault {kind}"))
    with pytest.raises(MeasureCommandError, match=shown) as error:
        measurer.measure(model_file, SHAPE)
    assert "\n" not in str(error.value) and "latency.standin" in str(error.value)


def test_a_minus_sign_before_the_number_makes_it_negative():
    with pytest.raises(MeasureCommandError, match="not a positive finite time"):
        parse_latencies_ms("run 1: 0.5 ms\nrun 2: -0.5 ms\n", r"(\d+\.\d+) ms")


def test_adjacent_keys_share_the_reference_block_between_them(tmp_path):
    builder = small_builder(tmp_path)
    builder.measure_keys(small_keys(5))
    assert len(builder.history_ms) == 6  # one block before the first key and one after each


@pytest.mark.parametrize("fault", ["disconnect@4", "nan@4"])
def test_failure_mid_build_keeps_every_row_and_a_rerun_resumes(fault, tmp_path, monkeypatch):
    """Calls: reference, key 1, reference, key 2, ...: the 4th call (key 2) fails; key 1's row stays."""
    keys = small_keys(3)
    monkeypatch.setenv("MOBILENAS_STANDIN_STATE", str(tmp_path / "calls"))
    monkeypatch.setenv("MOBILENAS_STANDIN_FAULT", fault)
    with pytest.raises(MeasureCommandError, match="run the same command again to resume") as error:
        _builder(tmp_path / "t").measure_keys(keys)
    assert "\n" not in str(error.value) and "(layers: 1, calibration models: 0)" in str(error.value)
    kept = (tmp_path / "t" / "entries.csv").read_bytes()
    assert _labels(tmp_path / "t") == [keys[0].label()]
    monkeypatch.delenv("MOBILENAS_STANDIN_FAULT")  # the device is back
    assert _builder(tmp_path / "t").measure_keys(keys) == 2
    assert (tmp_path / "t" / "entries.csv").read_bytes().startswith(kept)
    assert sorted(_labels(tmp_path / "t")) == sorted(k.label() for k in keys)


def _cli_build(folder: Path, env: dict) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "mobilenas.cli", "latency", "build", "--space", "mnasnet", "--resolution", "32",
               "--in-channels", "1", "--classes", "10", "--lazy", "--measurer", "command", "--command", STANDIN,
               "--calibration-specs", "1", "--calibration-rounds", "1", "--quiet", "--out", str(folder)]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=1200, env=env)


@pytest.mark.parametrize("fault, said", [("disconnect@8", "device disconnected or command failed"),
                                         ("negative@8", "printed garbage")])
def test_cli_build_failing_device_is_one_line_exit_2_rows_kept(fault, said, tmp_path):
    env = {**os.environ, "MOBILENAS_STANDIN_STATE": str(tmp_path / "calls"), "MOBILENAS_STANDIN_FAULT": fault}
    done = _cli_build(tmp_path / "t", env)
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert said in done.stderr and "run the same command again to resume" in done.stderr
    assert len(_labels(tmp_path / "t")) >= 1


@pytest.mark.slow
def test_cli_build_disconnected_then_rerun_finishes_with_the_earlier_rows(tmp_path):
    env = {**os.environ, "MOBILENAS_STANDIN_STATE": str(tmp_path / "calls"), "MOBILENAS_STANDIN_FAULT": "disconnect@12"}
    assert _cli_build(tmp_path / "t", env).returncode == 2
    kept = (tmp_path / "t" / "entries.csv").read_bytes()
    env.pop("MOBILENAS_STANDIN_FAULT")
    done = _cli_build(tmp_path / "t", env)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "t" / "entries.csv").read_bytes().startswith(kept)
    labels = _labels(tmp_path / "t")
    assert len(labels) == len(set(labels))


def _kill_child(folder: Path, log: Path, *extra: str) -> int:
    command = [sys.executable, "-m", "tests.kill_child", "table", str(folder), str(log), "--standin", "--keys", "4", *extra]
    return subprocess.run(command, cwd=REPO, capture_output=True, timeout=600).returncode


def test_build_through_the_standin_killed_resumes_losing_and_repeating_nothing(tmp_path):
    folder = tmp_path / "t"
    assert _kill_child(folder, tmp_path / "log1", "--kill", "entries.csv:1:after") == -signal.SIGKILL
    kept = (folder / "entries.csv").read_bytes()
    assert len(_labels(folder)) == 2
    assert _kill_child(folder, tmp_path / "log2") == 0
    assert (folder / "entries.csv").read_bytes().startswith(kept)
    remeasured = (tmp_path / "log2").read_text().split()
    assert len(remeasured) == 2 and not set(remeasured) & set(_labels(folder)[:2])
    assert sorted(_labels(folder)) == sorted(k.label() for k in small_keys(4))
