"""Run folders: manifest, explicit status, a dead owner reads as killed, resume checks."""
import json
import os
import signal
import subprocess
import sys

import pytest

from storage.runfolder import RunFolder, child_run
from storage.statefiles import StateFileError
from storage.status import Status


def test_create_writes_manifest_and_session_sets_status(tmp_path):
    run = RunFolder.create(tmp_path, job="search", slug="mnv3 small/x", seed=3, config={"trials": 5}, command=["x"])
    manifest = json.loads((run.path / "manifest.json").read_text())
    assert manifest["job"] == "search" and manifest["seed"] == 3 and manifest["config"] == {"trials": 5}
    assert run.path.name.endswith("-mnv3-small-x-s3")
    with run.session():
        assert RunFolder.open(run.path, job="search").status is Status.RUNNING
        run.set_status(Status.FINISHED)
    assert RunFolder.open(run.path, job="search").status is Status.FINISHED
    with pytest.raises(ValueError, match="already finished"):
        RunFolder.open(run.path, job="search").check_resumable()


def test_exception_marks_failed_with_the_error(tmp_path):
    run = RunFolder.create(tmp_path, job="search", slug="a", seed=0, config={})
    with pytest.raises(RuntimeError):
        with run.session():
            raise RuntimeError("boom")
    reopened = RunFolder.open(run.path, job="search")
    assert reopened.status is Status.FAILED and "boom" in reopened.manifest["error"]
    reopened.check_resumable()


def test_stop_flag_on_sigint_marks_interrupted_and_tells_the_user(tmp_path, capsys):
    run = RunFolder.create(tmp_path, job="search", slug="a", seed=0, config={})
    with run.session() as stop:
        os.kill(os.getpid(), signal.SIGINT)
        assert stop()
    assert RunFolder.open(run.path, job="search").status is Status.INTERRUPTED
    err = capsys.readouterr().err
    assert "SIGINT: stopping at the next safe point" in err and "Ctrl-C again" in err


def test_a_run_left_running_by_a_killed_process_reads_killed(tmp_path):
    code = ("import os, sys; from storage.runfolder import RunFolder; "
            f"r = RunFolder.create({str(tmp_path)!r}, job='search', slug='k', seed=0, config={{}}); "
            "s = r.session(); s.__enter__(); os.kill(os.getpid(), 9)")
    subprocess.run([sys.executable, "-c", code], check=False, cwd=os.getcwd())
    (path,) = tmp_path.iterdir()
    run = RunFolder.open(path, job="search")
    assert run.manifest["status"] == "running" and run.status is Status.KILLED
    run.check_resumable()


def test_open_rejects_other_jobs_and_malformed_manifests(tmp_path):
    run = RunFolder.create(tmp_path, job="train", slug="a", seed=0, config={})
    with pytest.raises(StateFileError, match="run folder of mobilenas train, not of mobilenas search"):
        RunFolder.open(run.path, job="search")
    (run.path / "manifest.json").write_text("[]")
    with pytest.raises(StateFileError, match="expected a JSON object"):
        RunFolder.open(run.path, job="train")
    with pytest.raises(FileNotFoundError, match="not a folder"):
        RunFolder.open(tmp_path / "nope", job="train")


def test_out_naming_a_file_is_refused(tmp_path):
    (tmp_path / "f").write_text("")
    with pytest.raises(NotADirectoryError, match="is a file"):
        RunFolder.create(tmp_path / "f", job="train", slug="a", seed=0, config={})


def test_open_checks_job_fields_and_tolerates_a_malformed_owner(tmp_path):
    run = RunFolder.create(tmp_path, job="train", slug="a", seed=0, config={}, extra={"data": {"name": "x"}})
    assert RunFolder.open(run.path, job="train", fields={"data": dict}).manifest["data"] == {"name": "x"}
    with pytest.raises(StateFileError, match="field 'latency' is missing"):
        RunFolder.open(run.path, job="train", fields={"latency": dict})
    run.update(owner="garbage", resumes="x")
    reopened = RunFolder.open(run.path, job="train")
    assert reopened.status is Status.KILLED
    with reopened.session():
        reopened.set_status(Status.FINISHED)
    assert reopened.manifest["resumes"] == 0


def test_a_diverged_run_is_not_resumable(tmp_path):
    run = RunFolder.create(tmp_path, job="train", slug="a", seed=0, config={})
    run.set_status(Status.DIVERGED, error="loss nan")
    with pytest.raises(ValueError, match="diverged \\(loss nan\\)"):
        RunFolder.open(run.path, job="train").check_resumable()


def test_create_on_a_full_disk_leaves_no_folder(tmp_path, monkeypatch):
    import errno

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError, match="No space left on device"):
        RunFolder.create(tmp_path, job="train", slug="a", seed=0, config={})
    assert list(tmp_path.iterdir()) == []


def test_child_run_finds_one_folder_and_refuses_two(tmp_path):
    assert child_run(tmp_path / "search", "search") is None
    RunFolder.create(tmp_path / "search", job="search", slug="a", seed=0, config={})
    assert child_run(tmp_path / "search", "search").manifest["job"] == "search"
    RunFolder.create(tmp_path / "search", job="search", slug="b", seed=0, config={})
    with pytest.raises(ValueError, match="holds 2 run folders"):
        child_run(tmp_path / "search", "search")
