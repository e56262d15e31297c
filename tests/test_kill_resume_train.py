"""``mobilenas train`` killed (SIGKILL, a real process) at several points, then resumed with
``--resume``: the run reads ``killed`` in between, resumes from its last checkpoint (never
redoing a checkpointed step, never losing a checkpointed epoch), and ends bit-identical to an
uninterrupted run, with one metrics row per epoch. ``tests/kill_child.py`` is the killed process.
"""
from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from mobilenas.cli import main
from search_spaces.encoding import spec_to_json
from storage.runfolder import RunFolder
from storage.status import Status
from tests.training.conftest import tiny_spec
from training.checkpoint import load_checkpoint

REPO = Path(__file__).resolve().parents[1]
OPTIONS = ["--data", "digits", "--resolution", "16", "--threads", "1", "--device", "cpu", "--latency-repeats", "5",
           "--batch-size", "64", "--epochs", "3", "--json"]
STEPS_PER_EPOCH = 19  # digits train split at batch 64
DETERMINISTIC = ["epoch", "step", "lr", "train_loss", "train_top1", "val_loss", "val_top1"]


def _spec(folder: Path) -> Path:
    path = folder / "tiny.json"
    path.write_text(spec_to_json(tiny_spec(in_channels=3, num_classes=1000)))
    return path


def _killed_run(tmp_path: Path, kill: str) -> Path:
    out = tmp_path / "runs"
    command = [sys.executable, "-m", "tests.kill_child", "train", "--kill", kill, "--",
               "train", str(_spec(tmp_path)), *OPTIONS, "--out", str(out)]
    done = subprocess.run(command, cwd=REPO, timeout=600, capture_output=True, text=True)
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    (run,) = out.iterdir()
    return run


def _resume(run: Path, capsys) -> tuple[dict, str]:
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--json"]) == 0
    captured = capsys.readouterr()
    return json.loads(captured.out.strip().splitlines()[-1]), captured.err


@pytest.fixture(scope="module")
def straight(tmp_path_factory) -> tuple[dict, pd.DataFrame]:
    folder = tmp_path_factory.mktemp("straight")
    out = subprocess.run([sys.executable, "-m", "mobilenas", "train", str(_spec(folder)), *OPTIONS, "--out",
                          str(folder / "runs")], cwd=REPO, timeout=600, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    return summary, pd.read_csv(Path(summary["run_dir"]) / "metrics.csv")


def _check_same_as_straight(run: Path, summary: dict, straight: tuple[dict, pd.DataFrame]) -> None:
    reference, reference_metrics = straight
    assert summary["top1"] == reference["top1"] and summary["val_top1"] == reference["val_top1"]
    metrics = pd.read_csv(run / "metrics.csv")
    assert metrics["epoch"].tolist() == [1, 2, 3], "an epoch row was lost or repeated"
    pd.testing.assert_frame_equal(metrics[DETERMINISTIC], reference_metrics[DETERMINISTIC])
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "finished" and manifest["results"]["top1"] == summary["top1"]


@pytest.mark.slow
@pytest.mark.parametrize("kill, resume_step", [
    ("step:25", STEPS_PER_EPOCH),            # mid-epoch 2: the epoch-1 checkpoint is the last finished work
    ("checkpoint.pt:2:before", 0),            # killed while saving epoch 1's checkpoint: the previous one holds
    ("metrics.csv:1:before", STEPS_PER_EPOCH),  # checkpoint saved, metrics row not yet: the row is not lost
    ("metrics.csv:2:torn", 2 * STEPS_PER_EPOCH),  # a torn metrics row
    ("manifest.json:3:before", 3 * STEPS_PER_EPOCH),  # trained and measured, killed writing 'finished'
])
def test_killed_training_resumes_losing_and_repeating_nothing(kill, resume_step, tmp_path, capsys, straight):
    run = _killed_run(tmp_path, kill)
    assert RunFolder.open(run, job="train").status is Status.KILLED
    assert int(load_checkpoint(run / "checkpoint.pt")["step"]) == resume_step
    summary, err = _resume(run, capsys)
    total = 3 * STEPS_PER_EPOCH
    if resume_step < total:
        assert f"(was killed): training continues at step {resume_step}/{total}" in err
    else:
        assert f"(was killed): training is complete ({total}/{total} steps)" in err
    _check_same_as_straight(run, summary, straight)


@pytest.mark.slow
def test_training_killed_twice_then_resumed(tmp_path, capsys, straight):
    run = _killed_run(tmp_path, "step:10")  # before any epoch finished: restarts at 0
    child = [sys.executable, "-m", "tests.kill_child", "train", "--kill", "step:45", "--", "train", "--resume", str(run),
             "--json"]
    done = subprocess.run(child, cwd=REPO, timeout=600, capture_output=True, text=True)
    assert done.returncode == -signal.SIGKILL and "training continues at step 0/57" in done.stderr
    assert RunFolder.open(run, job="train").status is Status.KILLED
    summary, err = _resume(run, capsys)
    assert re.search(r"\(was killed\): training continues at step 38/57", err)
    _check_same_as_straight(run, summary, straight)
    assert json.loads((run / "manifest.json").read_text())["resumes"] == 2
