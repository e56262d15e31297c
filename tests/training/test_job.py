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
