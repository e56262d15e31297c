"""``mobilenas train`` end to end on digits; errors are one line with exit code 2."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch

from mobilenas import cli_train
from mobilenas.cli import main
from search_spaces.encoding import spec_to_json
from storage.runfolder import StopFlag

from tests.training.conftest import tiny_spec

FAST = ["--data", "digits", "--resolution", "16", "--threads", "1", "--device", "cpu", "--latency-repeats", "5",
        "--batch-size", "64"]


@pytest.fixture
def spec_file(tmp_path) -> Path:
    path = tmp_path / "tiny.json"
    path.write_text(spec_to_json(tiny_spec(in_channels=3, num_classes=1000)))  # adapted to the data by the CLI
    return path


def _run_json(capsys, argv: list[str]) -> dict:
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_train_writes_run_folder_and_json(tmp_path, capsys, spec_file):
    result = _run_json(capsys, ["train", str(spec_file), *FAST, "--epochs", "1", "--out", str(tmp_path / "runs"), "--json"])
    assert {"top1", "latency_ms", "params", "madds", "run_dir"} <= set(result)
    assert 0.0 <= result["top1"] <= 1.0 and result["latency_ms"] > 0 and result["params"] > 0
    run_dir = Path(result["run_dir"])
    assert {p.name for p in run_dir.iterdir()} == {"manifest.json", "metrics.csv", "checkpoint.pt", "model.pt",
                                                   "model.onnx", "spec.json"}
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "finished" and manifest["config"]["epochs"] == 1 and manifest["seed"] == 0
    assert manifest["job"] == "train" and manifest["results"]["top1"] == result["top1"]
    assert manifest["data"]["in_channels"] == 1 and manifest["machine"]["cores"] >= 1
    assert manifest["packages"]["torch"] == torch.__version__
    assert json.loads((run_dir / "spec.json").read_text())["num_classes"] == 10
    assert list(pd.read_csv(run_dir / "metrics.csv")["epoch"]) == [1]


@pytest.mark.slow
def test_interrupt_then_resume_matches_uninterrupted(tmp_path, capsys, spec_file, monkeypatch):
    argv = ["train", str(spec_file), *FAST, "--epochs", "2", "--json"]
    straight = _run_json(capsys, [*argv, "--out", str(tmp_path / "a")])
    calls = iter(range(1000))
    monkeypatch.setattr(StopFlag, "__call__", lambda self: next(calls) >= 24)  # Ctrl-C in epoch 2
    assert main([*argv, "--out", str(tmp_path / "b")]) == 130
    err = capsys.readouterr().err
    assert "mobilenas train --resume" in err
    run_dir = next((tmp_path / "b").iterdir())
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "interrupted"
    monkeypatch.setattr(StopFlag, "__call__", lambda self: False)
    resumed = _run_json(capsys, ["train", "--resume", str(run_dir), "--json"])
    assert resumed["top1"] == straight["top1"] and resumed["val_top1"] == straight["val_top1"]


@pytest.mark.parametrize("argv, message", [
    (["train", "mobilenetv3-small", "--data", "mnist"], "unknown data set 'mnist'"),
    (["train", "--data", "digits"], "SPEC is required"),
    (["train", "no-such-net", "--data", "digits"], "unknown spec 'no-such-net'"),
    (["train", "mobilenetv3-small", "--data", "npz:/nonexistent.npz"], "does not exist"),
    (["train", "--resume", "/nonexistent-run"], "is not a folder"),
    (["train", "mobilenetv3-small", "--data", "digits", "--epochs", "0"], "train.epochs = 0"),
])
def test_errors_are_one_line_exit_2(capsys, argv, message, tmp_path):
    assert main([*argv, *([] if "--resume" in argv else ["--out", str(tmp_path)])]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err and err.startswith("mobilenas train: error:")


def test_divergence_is_one_line_exit_2(capsys, tmp_path, spec_file):
    argv = ["train", str(spec_file), *FAST, "--epochs", "1", "--lr", "1e6", "--out", str(tmp_path), "--json"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "training diverged" in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_gpu_is_a_clear_error(capsys, tmp_path, spec_file):
    assert main(["train", str(spec_file), *FAST[:-6], "--device", "cuda", "--out", str(tmp_path)]) == 2
    assert "no CUDA GPU" in capsys.readouterr().err


def test_real_ctrl_c_saves_checkpoint(tmp_path, capsys, spec_file, monkeypatch):
    import os
    import signal

    real_bar = cli_train.progress_bar

    def interrupting_bar(total, initial, enabled):
        on_progress, close = real_bar(total, initial, enabled)

        def hook(event):
            on_progress(event)
            if event.phase == "step" and event.step == 5:
                os.kill(os.getpid(), signal.SIGINT)
        return hook, close

    monkeypatch.setattr(cli_train, "progress_bar", interrupting_bar)
    before = signal.getsignal(signal.SIGINT)  # SIG_IGN when the suite runs in the background (nohup, &)
    assert main(["train", str(spec_file), *FAST, "--epochs", "1", "--out", str(tmp_path / "runs"), "--json"]) == 130
    run_dir = next((tmp_path / "runs").iterdir())
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "interrupted" and manifest["step"] == 5 and (run_dir / "checkpoint.pt").is_file()
    assert signal.getsignal(signal.SIGINT) is before


def test_defaults_come_from_train_config(tmp_path):
    from mobilenas.cli import build_parser
    from mobilenas.cli_train import config_from_args
    from training.config import TrainConfig

    args = build_parser().parse_args(["train", "mobilenetv3-small"])
    assert config_from_args(args) == TrainConfig()


@pytest.mark.parametrize("option, message", [
    (["--latency-repeats", "0"], "--latency-repeats = 0 is not allowed"),
    (["--width", "inf"], "--width = inf is not allowed"),
    (["--width", "nan"], "--width = nan is not allowed"),
    (["--threads", "0"], "train.threads = 0"),
    (["--resolution", "0"], "--resolution = 0 is not allowed"),
])
def test_bad_options_fail_before_any_work_and_leave_no_folder(capsys, tmp_path, spec_file, option, message):
    assert main(["train", str(spec_file), *FAST, *option, "--out", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_finished_run_is_not_resumed_and_options_with_resume_are_refused(tmp_path, capsys, spec_file):
    result = _run_json(capsys, ["train", str(spec_file), *FAST, "--epochs", "1", "--out", str(tmp_path), "--json"])
    run_dir = Path(result["run_dir"])
    before = {p.name: p.read_bytes() for p in run_dir.iterdir()}
    assert main(["train", "--resume", str(run_dir)]) == 2
    assert "already finished" in capsys.readouterr().err
    for extra in (["mobilenetv3-large"], ["--epochs", "9"], ["--lr", "0.5"], ["--no-augment"], ["--out", "x"]):
        assert main(["train", *extra, "--resume", str(run_dir)]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "--resume continues the run with its recorded settings; drop" in err
    assert {p.name: p.read_bytes() for p in run_dir.iterdir()} == before


def test_killed_run_reads_killed_and_resumes_saying_what_it_keeps(tmp_path, capsys, spec_file, monkeypatch):
    calls = iter(range(1000))
    monkeypatch.setattr(StopFlag, "__call__", lambda self: next(calls) >= 30)
    argv = ["train", str(spec_file), *FAST, "--epochs", "2", "--json", "--out", str(tmp_path / "runs")]
    assert main(argv) == 130
    run_dir = next((tmp_path / "runs").iterdir())
    manifest = json.loads((run_dir / "manifest.json").read_text())
    manifest.update(status="running", owner={"pid": 2 ** 22 + 17, "host": manifest["owner"]["host"]})  # as a SIGKILL leaves it
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    from storage.runfolder import RunFolder
    from storage.status import Status
    assert RunFolder.open(run_dir, job="train").status is Status.KILLED
    monkeypatch.setattr(StopFlag, "__call__", lambda self: False)
    capsys.readouterr()
    assert main(["train", "--resume", str(run_dir), "--json"]) == 0
    captured = capsys.readouterr()
    resumed, err = json.loads(captured.out.strip().splitlines()[-1]), captured.err
    assert f"(was killed): training continues at step {manifest['step']}/" in err and "recorded ones" in err
    assert list(pd.read_csv(run_dir / "metrics.csv")["epoch"]) == [1, 2]
    final = json.loads((run_dir / "manifest.json").read_text())
    assert final["status"] == "finished" and final["resumes"] == 1 and final["results"]["top1"] == resumed["top1"]
