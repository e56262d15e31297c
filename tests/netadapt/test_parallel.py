"""Ray evaluation of NetAdapt proposals: same outcomes as in-process, every Ray process ended."""
from __future__ import annotations

import pytest
import torch

from netadapt.evaluation import FinetuneJob, ProposalTask, SequentialEvaluator
from netadapt.parallel import RayEvaluator, processes_using, ray_folders
from netadapt.proposals import propose_reductions
from search_spaces.builder import build_model
from tests.netadapt.loop_helpers import digits8, loop_spec, toy_predict_ms
from training.evaluate import Budget


@pytest.mark.slow
@pytest.mark.ray
def test_ray_outcomes_equal_sequential_and_processes_end(tmp_path, digits8):
    spec = loop_spec()
    torch.manual_seed(0)
    weights = build_model(spec).state_dict()
    proposals = propose_reductions(spec, toy_predict_ms, 0.005)[:3]
    tasks = [ProposalTask(i, p.spec, seed=100 + i) for i, p in enumerate(proposals)]
    job = FinetuneJob(Budget(steps=3), threads=1, device="cpu")
    expected = SequentialEvaluator(digits8, job).evaluate(spec, weights, tasks)
    temp = tmp_path / "run" / "ray"
    with RayEvaluator(digits8, job, temp_dir=temp, workers=2) as evaluator:
        folders = ray_folders(temp)
        assert processes_using(folders[-1]), "a local cluster runs from the temp folder"
        got = evaluator.evaluate(spec, weights, tasks)
    assert [o.index for o in got] == [0, 1, 2]
    for a, b in zip(expected, got):
        assert a.result.top1 == b.result.top1 and a.result.loss == b.result.loss
        assert all(torch.equal(a.weights[k], b.weights[k]) for k in a.weights)
    assert not any(processes_using(f) for f in folders), "Ray processes outlived close()"
    assert not folders[-1].exists(), "the short symlink is removed"
    assert any(temp.glob("session_*")), "Ray's session folder lives inside the run folder"
