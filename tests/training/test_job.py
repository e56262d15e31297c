"""The one way a model is trained into a run folder: a step of a larger job gets one train run
folder under its own folder, stops and resumes there, and a finished one is read back."""
from __future__ import annotations

import torch

from storage.runfolder import RunFolder
from storage.status import Status
from training.job import WEIGHTS, load_trained, train_in


def test_train_in_stops_resumes_and_reads_a_finished_run_back(tmp_path, digits16, spec16, quick_config):
    parent = tmp_path / "final"
    steps = []

    def stop_after_three() -> bool:
        steps.append(1)
        return len(steps) > 3

    kwargs = dict(spec_name="tiny", data_name="digits", split_seed=0)
    assert train_in(parent, spec16, digits16, quick_config, should_stop=stop_after_three, **kwargs) is None
    (run_dir,) = parent.iterdir()
    assert RunFolder.open(run_dir, job="train").status is Status.INTERRUPTED
    result = train_in(parent, spec16, digits16, quick_config, should_stop=lambda: False, **kwargs)
    assert result["run_dir"] == str(run_dir) and [p.name for p in parent.iterdir()] == [run_dir.name]
    assert {"top1", "top1_stderr", "arch", "params", "madds", "epochs"} <= set(result) and "latency_ms" not in result
    for name in ("manifest.json", "metrics.csv", "checkpoint.pt", WEIGHTS, "model.onnx", "spec.json"):
        assert (run_dir / name).is_file(), name
    again = train_in(parent, spec16, digits16, quick_config, should_stop=lambda: True, **kwargs)
    assert again == result  # read back, not trained again
    model = load_trained(run_dir, spec16)
    with torch.no_grad():
        assert model(digits16.x_test[:2]).shape == (2, 10)


def test_a_run_started_from_given_weights_keeps_them_and_a_resume_starts_from_them(tmp_path, digits16, spec16,
                                                                                    quick_config):
    """Training starts from the given weights (not the builder's initialization), the run folder
    keeps its own copy, and a resumed run reads the copy back."""
    from search_spaces.builder import build_model
    from storage.torchfiles import save_torch
    from training.checkpoint import load_checkpoint
    from training.job import CHECKPOINT, INIT, create_job, execute, open_job

    torch.manual_seed(123)
    given = build_model(spec16).state_dict()
    save_torch(tmp_path / "start.pt", given)
    kwargs = dict(spec_name="tiny", data_name="digits", split_seed=0, slug="t")
    job = create_job(tmp_path / "runs", spec16, digits16, quick_config, init_weights=tmp_path / "start.pt", **kwargs)
    plain = create_job(tmp_path / "plain", spec16, digits16, quick_config, **kwargs)
    assert (job.run.path / INIT).is_file() and job.run.manifest["init"]["source"] == str(tmp_path / "start.pt")
    assert plain.initial_state is None and "init" not in plain.run.manifest
    for stopped in (job, plain):
        assert execute(stopped, should_stop=lambda: True) is None  # stopped after its first step
    after_one_step = load_checkpoint(job.run.file(CHECKPOINT))["model"]
    scratch = load_checkpoint(plain.run.file(CHECKPOINT))["model"]
    for name in ("stem.conv.weight", "blocks.1.conv_pw.conv.weight"):
        moved = (after_one_step[name] - given[name]).norm()
        assert moved < 0.1 * (scratch[name] - given[name]).norm()  # one step from the given weights
    (tmp_path / "start.pt").unlink()  # the run folder holds its own copy
    reopened = open_job(job.run.path)
    assert all(torch.equal(reopened.initial_state[k], v) for k, v in given.items())
    assert execute(reopened)["top1"] >= 0.0


def test_initial_weights_of_another_model_are_refused_before_a_folder_exists(tmp_path, digits16, spec16, quick_config):
    import pytest

    from search_spaces.builder import build_model
    from storage.torchfiles import save_torch
    from training.job import create_job

    other = spec16.replace(head=spec16.head.__class__(32, 64, "hswish", 0.2))
    save_torch(tmp_path / "other.pt", build_model(other).state_dict())
    with pytest.raises(ValueError, match=r"initial weights .*other\.pt.* do not fit"):
        create_job(tmp_path / "runs", spec16, digits16, quick_config, init_weights=tmp_path / "other.pt",
                   spec_name="tiny", data_name="digits", split_seed=0, slug="t")
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
