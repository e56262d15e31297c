"""``mobilenas supernet train`` and ``mobilenas search --evaluator supernet``: options refused in
one line (exit 2) before any work and without a run folder; (slow) a real training, resumed
after SIGKILL, then a search with the supernet evaluator."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mobilenas.cli import main
from storage.runfolder import RunFolder

ROOT = Path(__file__).resolve().parents[2]
MOBILENAS = str(Path(sys.executable).parent / "mobilenas")


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("argv, message", [
    (["--evaluator", "supernet"], "needs --supernet RUN_DIR"),
    (["--evaluator", "supernet", "--supernet", "no/such/run"], "--supernet"),
    (["--supernet", "no/such/run"], "is not a run folder (no manifest.json)"),
    (["--evaluator", "proxy", "--supernet", "x"], "only used with --evaluator supernet"),
    (["--supernet", "x", "--asha", "--epochs", "2"], "--epochs applies to the proxy evaluator only"),
    (["--supernet", "x", "--train-subset", "100"], "apply to the proxy evaluator only"),
    (["--evaluator", "oracle"], "invalid choice: 'oracle'"),
])
def test_bad_supernet_search_options_fail_in_one_line_without_a_run_folder(tmp_path, capsys, argv, message):
    code, out, err = run_cli(capsys, "search", "--target-ms", "1", *argv, "--out", str(tmp_path / "runs"))
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "runs").exists()


def make_folder(tmp_path, job, status="finished", config=None):
    folder = RunFolder.create(tmp_path / "made", job=job, slug=job, seed=0,
                              config=config or {"space": "mnasnet-mbconv", "data": "mnist-rot-back-image"})
    folder.update(status=status)
    return folder.path


@pytest.mark.parametrize("job, status, config, message", [
    ("train", "finished", None, "is a run folder of mobilenas train, not of mobilenas supernet"),
    ("supernet", "interrupted", None, "is interrupted, not finished"),
    ("supernet", "finished", {"space": "mnasnet-small-mbconv", "data": "mnist-rot-back-image"},
     "trained for another search: space 'mnasnet-small-mbconv' != 'mnasnet-mbconv'"),
    ("supernet", "finished", {"space": "mnasnet-mbconv", "data": "digits"}, "data 'digits' != 'mnist-rot-back-image'"),
    ("supernet", "finished", None, "has no checkpoint.pt"),
])
def test_a_supernet_folder_that_does_not_fit_is_refused(tmp_path, capsys, job, status, config, message):
    path = make_folder(tmp_path, job, status, config)
    code, out, err = run_cli(capsys, "search", "--target-ms", "1", "--space", "mnasnet-mbconv", "--supernet", str(path),
                             "--out", str(tmp_path / "runs"))
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_a_search_given_only_a_supernet_searches_the_supernets_space(tmp_path, capsys):
    """Without --space the search takes the supernet's (here it then stops at the missing
    checkpoint, past the space check); with another --space it is refused."""
    path = make_folder(tmp_path, "supernet", config={"space": "mnasnet-small-mbconv", "data": "mnist-rot-back-image"})
    code, out, err = run_cli(capsys, "search", "--target-ms", "1", "--supernet", str(path), "--out", str(tmp_path / "runs"))
    assert code == 2 and "has no checkpoint.pt" in err, err
    code, out, err = run_cli(capsys, "search", "--target-ms", "1", "--space", "mnasnet", "--supernet", str(path),
                             "--out", str(tmp_path / "runs"))
    assert code == 2 and "space 'mnasnet-small-mbconv' != 'mnasnet'" in err, err
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("argv, message", [
    (["--space", "darts"], "--space 'darts' has no supernet"),
    (["--space", "mnasnet"], "its MBConv part is mnasnet-mbconv"),
    (["--epochs", "0"], "--epochs = 0"),
    (["--data", "mnist9k"], "unknown data set 'mnist9k'"),
    (["--subnets-per-step", "1"], "--subnets-per-step = 1"),
    (["--resume", "no/such/run"], "is not a folder"),
    (["--resume", ".", "--epochs", "3"], "drop --epochs"),
])
def test_bad_supernet_train_options_fail_in_one_line_without_a_run_folder(tmp_path, capsys, argv, message):
    code, out, err = run_cli(capsys, "supernet", "train", *argv, "--out", str(tmp_path / "runs"))
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "runs").exists()


def _train(out: Path, *extra: str) -> subprocess.Popen:
    command = [MOBILENAS, "supernet", "train", *extra, "--json"] if extra[:1] == ("--resume",) else [
        MOBILENAS, "supernet", "train", "--data", "digits", "--resolution", "16", "--epochs", "2", "--rule", "uniform",
        "--batch-size", "128", "--out", str(out), "--json", *extra]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})


@pytest.mark.slow
@pytest.mark.ray
def test_supernet_killed_resumed_equals_uninterrupted_and_serves_a_search(tmp_path):
    import torch

    reference = _train(tmp_path / "a")
    out, err = reference.communicate(timeout=900)
    assert reference.returncode == 0, err
    result = json.loads(out)
    assert {"run_dir", "val_top1_largest", "val_top1_smallest"} <= set(result)
    killed = _train(tmp_path / "b")
    run_dir = None
    while run_dir is None or not (run_dir / "checkpoint.pt").is_file():
        line = killed.stderr.readline()
        if line.startswith("supernet: run folder "):
            run_dir = Path(line.split("run folder ", 1)[1].strip())
        time.sleep(0.05)
    time.sleep(1.0)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    resumed = _train(tmp_path / "b", "--resume", str(run_dir))
    out, err = resumed.communicate(timeout=900)
    assert resumed.returncode == 0, err
    a = torch.load(Path(result["run_dir"]) / "checkpoint.pt", weights_only=True)["model"]
    b = torch.load(run_dir / "checkpoint.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    search = subprocess.run([MOBILENAS, "search", "--data", "digits", "--resolution", "16", "--target-ms", "1",
                             "--strategy", "random", "--trials", "4", "--supernet", result["run_dir"],
                             "--out", str(tmp_path / "s"), "--json"], capture_output=True, text=True, cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=900)
    assert search.returncode == 0, search.stderr
    summary = json.loads(search.stdout)
    manifest = json.loads((Path(summary["run_dir"]) / "manifest.json").read_text())
    assert manifest["config"]["evaluator"] == "supernet" and manifest["evaluator"]["name"] == "supernet"
    assert summary["trials"] == 4
