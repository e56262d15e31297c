"""The pipeline's supernet trains on the budget's thread count, never above the run's."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from pipeline import supernet_stage
from pipeline.config import BUDGETS, PipelineConfig


@pytest.mark.parametrize(("budget", "threads", "expected"), [("small", 2, 1), ("small", 1, 1), ("medium", 2, 2)])
def test_the_supernet_trains_on_the_budgets_threads(tmp_path, monkeypatch, budget, threads, expected):
    seen = []

    class FakeJob:
        def __init__(self, settings, **kwargs):
            seen.append(settings)

        def run(self):
            return {"val_top1_largest": 0.5, "val_top1_smallest": 0.4, "train_s": 1.0}

    monkeypatch.setattr(supernet_stage, "SupernetJob", FakeJob)
    config = PipelineConfig(data="digits", target_ms=1.0, budget=budget, evaluator="supernet", space="mnasnet-small-mbconv",
                            threads=threads)
    run = SimpleNamespace(config=config, path=tmp_path, say=lambda message: None)
    assert supernet_stage.stage_supernet(run)["trained_here"]
    assert seen[0].threads == expected
    assert seen[0].epochs == BUDGETS[budget].supernet_epochs
