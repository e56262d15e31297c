"""NetAdapt inside a pipeline with a ``--target-like`` budget times the models it keeps paired with
the budget's model (netadapt.job.measured_with, pipeline.netadapt_rounds.budget_model)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from latency.paired import WHOLE_MODEL_PRECISION

import latency.lazy
from latency.lazy import LazyPredictor
from netadapt import job
from netadapt.job import JobSetup
from netadapt.loop import NetAdaptConfig
from pipeline import netadapt_rounds
from pipeline.config import PipelineConfig
from search_spaces.encoding import format_spec, parse_spec
from search_spaces.resolve import resolve_spec

SMALL = resolve_spec("mobilenetv3-small", width=1.0, resolution=32, num_classes=10, in_channels=1)


def setup(**extra: Any) -> JobSetup:
    return JobSetup(NetAdaptConfig(target_ms=1.0), "s", "s", "digits", 0, "t", "error", 1, None, None, 1, **extra)


class FakeTable:
    manifest = {"measurer": {"measurer": "ort-cpu"}}


def test_kept_models_are_timed_against_the_budget_model_in_table_units(monkeypatch):
    seen = []

    def fake_measure(measurer, specs, reference, **kwargs):
        seen.append((specs, reference, kwargs["precision"]))
        return [SimpleNamespace(ratio=1.2)]

    monkeypatch.setattr(latency.lazy, "measure_specs", fake_measure)
    predictor = SimpleNamespace(table=FakeTable(), measure_ms=lambda specs: pytest.fail("the table's reference was used"))
    predictor.measure_like_ms = LazyPredictor.measure_like_ms.__get__(predictor)
    measure = job.measured_with(predictor, setup(measure_like=format_spec(SMALL), measure_like_ms=0.5))
    assert measure(SMALL, {}) == pytest.approx(0.6)
    assert seen[0][0] == [SMALL] and seen[0][1] == SMALL and seen[0][2] is not None


def test_the_last_steps_measurement_spreads_over_the_deciding_span(monkeypatch):
    seen = []

    def fake_measure(measurer, specs, reference, **kwargs):
        seen.append((kwargs["min_seconds"], kwargs["precision"]))
        return [SimpleNamespace(ratio=1.0) for _ in specs]

    monkeypatch.setattr(latency.lazy, "measure_specs", fake_measure)
    predictor = SimpleNamespace(table=FakeTable())
    predictor.measure_like_ms = LazyPredictor.measure_like_ms.__get__(predictor)
    like = setup(measure_like=format_spec(SMALL), measure_like_ms=0.5)
    job.measured_many_with(predictor, like, 10.0)([SMALL, SMALL])
    job.measured_with(predictor, like)(SMALL, {})
    job.measured_many_with(predictor, like, precision=job.STEP_PRECISION)([SMALL])
    # the last step's pool decides where the loop lands; a kept step's check steers; an earlier step's pool ranks
    assert seen == [(10.0, WHOLE_MODEL_PRECISION), (0.0, WHOLE_MODEL_PRECISION), (0.0, job.STEP_PRECISION)]
    assert job.STEP_PRECISION > WHOLE_MODEL_PRECISION


def test_without_a_budget_model_the_tables_reference_is_used():
    predictor = SimpleNamespace(measure_ms=lambda specs, **_: [0.25])
    assert job.measured_with(predictor, setup())(SMALL, {}) == 0.25
    assert job.measured_with(predictor)(SMALL, {}) == 0.25


def test_the_budget_model_and_its_latency_go_together_and_survive_the_manifest():
    with pytest.raises(ValueError, match="measure_like and measure_like_ms go together"):
        setup(measure_like=format_spec(SMALL))
    recorded = setup(measure_like=format_spec(SMALL), measure_like_ms=0.5)
    assert JobSetup.from_dict(recorded.to_dict()) == recorded
    older = {k: v for k, v in recorded.to_dict().items() if not k.startswith("measure_like")}
    assert JobSetup.from_dict(older).measure_like is None  # a run recorded before the fields


@dataclass
class FakePipeline:
    config: PipelineConfig
    results: dict[str, Any] = field(default_factory=lambda: {"table": {"target_ms": 0.18}})
    path: Path = Path(".")

    def result(self, name: str) -> dict[str, Any]:
        return self.results[name]


def test_the_pipeline_hands_netadapt_its_budget_model_and_its_latency():
    config = PipelineConfig(data="digits", target_like="mobilenetv3-small", target_width=1.0, target_scale=0.9)
    record = netadapt_rounds.budget_model(FakePipeline(config), format_spec(SMALL))
    assert parse_spec(record["measure_like"]) == SMALL
    assert record["measure_like_ms"] == pytest.approx(0.2)  # the target is 0.9 x the budget model
    assert netadapt_rounds.budget_model(FakePipeline(PipelineConfig(data="digits", target_ms=1.0)), "spec") == {}
