"""`mobilenas netadapt`: options checked before any work, outputs of a run, resume after SIGKILL."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from mobilenas.cli import main
from netadapt.state import LoopStore, load_weights
from search_spaces.builder import build_model
from search_spaces.encoding import spec_to_dict
from tests.mobilenas import netadapt_toy
from tests.netadapt.loop_helpers import loop_spec, toy_predict_ms

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def toy(monkeypatch):
    monkeypatch.setattr("mobilenas.cli_netadapt.open_predictor", netadapt_toy.toy_open_predictor)
    monkeypatch.setattr("netadapt.job.open_predictor", netadapt_toy.toy_open_predictor)


def _spec32():
    return loop_spec().replace(resolution=32)


@pytest.fixture
def spec_and_weights(tmp_path):
    spec = _spec32()
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec_to_dict(spec)))
    torch.manual_seed(0)
    weights = tmp_path / "w.pt"
    torch.save(build_model(spec).state_dict(), weights)
    return path, weights


def _args(spec_path, weights, out, target, *extra):
    return ["netadapt", str(spec_path), "--weights", str(weights), "--target-ms", str(target), "--data", "digits",
            "--short-steps", "2", "--long-epochs", "0", "--delta", "0.08", "--workers", "1", "--out", str(out), *extra]


@pytest.mark.parametrize("extra, message", [
    (["--target-ms", "-1"], "target_ms"), (["--short-steps", "0"], "short_steps"), (["--delta", "2"], "delta_fraction"),
    (["--granularity", "0"], "granularity"), (["--workers", "0"], "--workers"), (["--data", "nope"], "nope"),
    (["--weights", "missing.pt"], "missing.pt"),
])
def test_bad_options_fail_in_one_line_before_any_folder(tmp_path, capsys, toy, spec_and_weights, extra, message):
    spec_path, weights = spec_and_weights
    out = tmp_path / "runs"
    assert main(_args(spec_path, weights, out, 1.0) + extra) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not out.exists() or not any(out.iterdir())


def test_resume_refuses_options_that_would_change_the_run(tmp_path, capsys):
    assert main(["netadapt", "--resume", str(tmp_path), "--target-ms", "0.5", "--select", "accuracy"]) == 2
    err = capsys.readouterr().err
    assert "--target-ms" in err and "--select" in err and len(err.strip().splitlines()) == 1


def test_target_above_start_or_below_floor_is_refused_with_nothing_written(tmp_path, capsys, toy, spec_and_weights):
    spec_path, weights = spec_and_weights
    start = toy_predict_ms(_spec32())
    out = tmp_path / "runs"
    assert main(_args(spec_path, weights, out, start * 1.01)) == 2
    assert "not below the start latency" in capsys.readouterr().err
    assert main(_args(spec_path, weights, out, start * 0.01)) == 2
    err = capsys.readouterr().err
    assert "unreachable" in err and "granularity floor" in err
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.slow
def test_run_writes_every_output_and_json(tmp_path, capsys, toy, spec_and_weights):
    spec_path, weights = spec_and_weights
    target = 0.85 * toy_predict_ms(_spec32())
    assert main(_args(spec_path, weights, tmp_path / "runs", target, "--json")) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    run = Path(summary["run_dir"])
    assert {"run_dir", "iterations", "final_spec", "final_top1", "predicted_latency_ms", "measured_latency_ms"} <= set(summary)
    assert summary["predicted_latency_ms"] <= target and summary["iterations"] >= 1 and summary["measured_latency_ms"] > 0
    for name in ("history.csv", "trajectory.png", "final.json", "final.md", "final.pt", "final.onnx", "state.json"):
        assert (run / name).is_file(), name
    history = pd.read_csv(run / "history.csv")
    assert history.groupby("iteration")["chosen"].sum().eq(1).all()
    assert history.loc[history["chosen"], "measured_ms"].gt(0).all()
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["job"] == "netadapt" and manifest["status"] == "finished"
    assert set(load_weights(run / "final.pt")) == set(build_model(_spec32()).state_dict())
    assert "iteration 1:" in captured.err and "ETA" in captured.err


def _toy_cli(args, **kwargs):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "tests.mobilenas.netadapt_toy", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def _only_run(out: Path) -> Path:
    runs = [p for p in out.iterdir() if p.is_dir()]
    assert len(runs) == 1
    return runs[0]


@pytest.mark.slow
def test_sigkill_at_any_moment_resumes_without_losing_an_iteration(tmp_path, spec_and_weights):
    spec_path, weights = spec_and_weights
    target = 0.7 * toy_predict_ms(_spec32())
    whole = _toy_cli(_args(spec_path, weights, tmp_path / "whole", target, "--delta", "0.05"))
    assert whole.wait(timeout=300) == 0, whole.stderr.read()
    reference = LoopStore(_only_run(tmp_path / "whole")).history.read()
    killed = _toy_cli(_args(spec_path, weights, tmp_path / "killed", target, "--delta", "0.05"))
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:  # kill once two iterations are committed, mid-way in the third
        state = next((tmp_path / "killed").glob("*/state.json"), None)
        if state is not None and json.loads(state.read_text())["iteration"] >= 2:
            break
        time.sleep(0.05)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    run = _only_run(tmp_path / "killed")
    kept = LoopStore(run).history.read()
    assert kept["iteration"].max() >= 2
    resumed = _toy_cli(["netadapt", "--resume", str(run), "--json"])
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read()
    final = LoopStore(run).history.read()
    assert final.iloc[:len(kept)].equals(kept), "no committed row changed"
    timing = ["measured_ms"]  # wall-clock ORT measurements differ run to run; everything else is deterministic
    assert final.drop(columns=timing).equals(reference.drop(columns=timing)), "killed + resumed == uninterrupted"
    assert json.loads((run / "manifest.json").read_text())["resumes"] == 1


@pytest.mark.slow
@pytest.mark.ray
def test_ray_run_killed_and_resumed_equals_in_process_run_and_leaves_no_ray_process(tmp_path, spec_and_weights):
    from netadapt.parallel import processes_using, ray_folders

    spec_path, weights = spec_and_weights
    target = 0.75 * toy_predict_ms(_spec32())
    local = _toy_cli(_args(spec_path, weights, tmp_path / "local", target))
    assert local.wait(timeout=300) == 0, local.stderr.read()
    args = _args(spec_path, weights, tmp_path / "ray", target)
    killed = _toy_cli(args[:args.index("--workers")] + ["--workers", "2"] + args[args.index("--workers") + 2:])
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        state = next((tmp_path / "ray").glob("*/state.json"), None)
        if state is not None and json.loads(state.read_text())["iteration"] >= 1:
            break
        time.sleep(0.05)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    run = _only_run(tmp_path / "ray")
    old_link = ray_folders(run / "ray")[-1]
    resumed = _toy_cli(["netadapt", "--resume", str(run)])
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read()
    timing = ["measured_ms"]
    expected = LoopStore(_only_run(tmp_path / "local")).history.read().drop(columns=timing)
    assert LoopStore(run).history.read().drop(columns=timing).equals(expected)
    assert not processes_using(old_link) and not processes_using((run / "ray").resolve())
    assert not old_link.exists()


def test_without_weights_the_start_model_is_trained_in_a_train_run_folder(tmp_path, capsys, toy, spec_and_weights):
    """Pre-training goes through the one training job: a ``train`` run folder under ``pretrain/``;
    a run whose pre-training an earlier version began (``pretrain.ckpt``) is refused in one line."""
    spec_path, _ = spec_and_weights
    args = ["netadapt", str(spec_path), "--target-ms", str(0.9 * toy_predict_ms(_spec32())), "--data", "digits",
            "--short-steps", "2", "--long-epochs", "0", "--delta", "0.08", "--workers", "1", "--pretrain-epochs", "1",
            "--out", str(tmp_path / "runs"), "--json"]
    assert main(args) == 0
    run = Path(json.loads(capsys.readouterr().out)["run_dir"])
    (pretrain,) = (run / "pretrain").iterdir()
    manifest = json.loads((pretrain / "manifest.json").read_text())
    assert manifest["job"] == "train" and manifest["status"] == "finished" and manifest["config"]["epochs"] == 1
    start, trained = load_weights(run / "start.pt"), load_weights(pretrain / "model.pt")
    assert all(torch.equal(start[k], trained[k]) for k in trained)
    (run / "pretrain.ckpt").write_bytes(b"begun by an earlier version")
    from netadapt.job import pretrain
    from storage.runfolder import RunFolder

    with pytest.raises(ValueError, match="begun by an earlier mobilenas version"):
        pretrain(RunFolder.open(run, job="netadapt"), None, None, None, lambda: False, None)
