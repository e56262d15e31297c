"""The pipeline's measure stage: every trained model paired with MobileNetV3-Small through the
table's measurer, spread over the span of a deciding check."""
from types import SimpleNamespace

import pipeline.stages as stages
from latency.paired import WHOLE_MODEL_SECONDS
from search_spaces.encoding import format_spec
from search_spaces.reference import reference_spec

SMALL = reference_spec("mobilenetv3-small", resolution=32, num_classes=10, in_channels=1)
LARGE = reference_spec("mobilenetv3-large", resolution=32, num_classes=10, in_channels=1)


def test_the_measure_stage_spreads_like_a_round_check_and_keeps_names(monkeypatch):
    seen = []

    def fake(specs, *, measurer, min_seconds):
        seen.append((measurer, min_seconds, [format_spec(s) for s in specs]))
        return [{"latency_ms": float(i + 1)} for i in range(len(specs))]

    monkeypatch.setattr(stages, "measure_side_by_side", fake)
    monkeypatch.setattr(stages, "table_measurer", lambda folder: f"measurer of {folder}")
    results = {"final": {"arch": format_spec(LARGE), "top1": 0.5}, "table": {"folder": "t"},
               "references": {"models": [{"name": "mobilenetv3-small-x1", "arch": format_spec(SMALL), "top1": 0.3}]}}
    out = stages.stage_measure(SimpleNamespace(result=results.__getitem__))
    assert seen == [("measurer of t", WHOLE_MODEL_SECONDS, [format_spec(LARGE), format_spec(SMALL)])]
    assert [(m["name"], m["latency_ms"]) for m in out["models"]] == [("final", 1.0), ("mobilenetv3-small-x1", 2.0)]
