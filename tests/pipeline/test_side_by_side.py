"""References trained in a second process beside the final model: the same run folders and
results as trained in the pipeline's process, nothing lost when either side stops or fails."""
import pytest

from pipeline.side_by_side import references_beside
from search_spaces.resolve import resolve_spec
from storage.runfolder import child_run
from storage.status import Status
from training.config import TrainConfig
from training.datasets import default_resolution, load_dataset
from training.job import train_in

RECIPE = TrainConfig(epochs=1, batch_size=64, threads=1, seed=3, device="cpu")


def _jobs():
    data = load_dataset("digits", resolution=default_resolution("digits"), split_seed=0)
    spec = resolve_spec("mobilenetv3-small", width=0.5, resolution=data.resolution, num_classes=data.num_classes,
                        in_channels=data.in_channels)
    return data, [("references/mobilenetv3-small-x0.5", spec)]


def _train_here(folder, spec, data):
    return train_in(folder, spec, data, RECIPE, spec_name=folder.name, data_name="digits", split_seed=0,
                    should_stop=lambda: False)


def test_references_trained_beside_are_read_back_as_trained_here(tmp_path):
    data, jobs = _jobs()
    said = []
    with references_beside(tmp_path / "a", "digits", jobs, RECIPE, said.append, lambda: False):
        pass  # the final model would train here
    folder, spec = tmp_path / "a" / jobs[0][0], jobs[0][1]
    assert child_run(folder, "train").status is Status.FINISHED
    beside = _train_here(folder, spec, data)  # the references stage reads it back
    here = _train_here(tmp_path / "b" / jobs[0][0], spec, data)
    assert beside["top1"] == pytest.approx(here["top1"]) and beside["arch"] == here["arch"]
    assert said == ["references: training mobilenetv3-small-x0.5 beside the final model"]


def test_a_stopped_final_training_stops_the_references_and_the_stage_resumes_them(tmp_path):
    data, jobs = _jobs()
    with pytest.raises(RuntimeError, match="final stopped"):
        with references_beside(tmp_path, "digits", jobs, RECIPE, lambda m: None, lambda: False):
            raise RuntimeError("final stopped")
    folder, spec = tmp_path / jobs[0][0], jobs[0][1]
    run = child_run(folder, "train")
    assert run is None or run.status in (Status.INTERRUPTED, Status.FINISHED)
    assert _train_here(folder, spec, data)["epochs"] == RECIPE.epochs
    assert child_run(folder, "train").status is Status.FINISHED


def test_a_failing_second_process_is_reported_and_nothing_is_half_written(tmp_path):
    _, jobs = _jobs()
    said = []
    with references_beside(tmp_path, "no-such-data", jobs, RECIPE, said.append, lambda: False):
        pass
    assert "ended with exit code 1" in said[-1] and "the references stage trains what it did not finish" in said[-1]
    assert not (tmp_path / jobs[0][0]).exists()
