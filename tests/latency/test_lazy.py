"""Lazy tables: ensure_table builds or reuses a table; LazyPredictor measures missing layers
(stem and head keys per input channels and class count) before predicting (latency.lazy)."""
from __future__ import annotations

import dataclasses
import json

import pytest

from latency.keys import spec_keys
from latency.lazy import ANCHOR_MODELS, LAZY_MAX_PASSES, LazyPredictor, ensure_table
from latency.predictor import LatencyPredictor
from latency.table import MANIFEST_FILE, MissingKeyError, TableMismatchError, load_table
from search_spaces.mnasnet_space import MnasNetSpace
from tests.latency.fakes import other_cpu_family, FakeMeasurer, copy_table, probed_specs


def _one_channel_ten_classes(spec):
    return dataclasses.replace(spec, in_channels=1, num_classes=10)


def test_missing_stem_and_head_keys_are_measured_then_predicted(probed_table, tmp_path):
    folder = copy_table(probed_table, tmp_path / "t")
    lazy = LazyPredictor(folder, tolerance=5)
    spec = probed_specs()[0]
    small = _one_channel_ten_classes(spec)
    assert lazy.missing_keys([spec]) == set()
    missing = lazy.missing_keys([small])
    assert {k.kind for k in missing} == {"stem", "head"} and {k.in_channels for k in missing if k.kind == "stem"} == {1}
    before = len(lazy.table)
    latency = lazy.predict_ms(small)
    assert len(lazy.table) == before + 2 and lazy.measured_keys == 2
    assert latency == pytest.approx(LatencyPredictor(load_table(folder)).predict_ms(small))
    assert set(spec_keys(small)) <= set(load_table(folder).keys())  # appended to the table on disk
    assert lazy.predict_ms(small) == latency and lazy.measured_keys == 2  # nothing measured twice


def test_a_table_from_other_hardware_is_rescaled_on_request(probed_table, tmp_path):
    folder = copy_table(probed_table, tmp_path / "t", lambda m: m["fingerprint"].update(cpu_family=other_cpu_family()))
    lazy = LazyPredictor(folder, on_drift="rescale")
    small = probed_specs()[0]
    latency = lazy.predict_ms(small)
    assert lazy.drift.action == "rescaled"
    assert latency == pytest.approx(lazy.drift.ratio * LatencyPredictor(load_table(folder, force=True)).predict_ms(small))


def test_layers_are_not_added_to_a_table_from_other_hardware(probed_table, tmp_path):
    folder = copy_table(probed_table, tmp_path / "t", lambda m: m["fingerprint"].update(cpu_family=other_cpu_family()))
    lazy = LazyPredictor(folder, tolerance=5, on_drift="force")
    assert lazy.predict_ms(probed_specs()[0]) > 0  # every layer present: fine
    with pytest.raises(TableMismatchError, match="cannot add this machine's layers"):
        lazy.predict_ms(_one_channel_ten_classes(probed_specs()[0]))


def test_uncalibrated_resolution_fails_before_measuring(probed_table, tmp_path):
    lazy = LazyPredictor(copy_table(probed_table, tmp_path / "t"), tolerance=5)
    with pytest.raises(MissingKeyError, match="calibrated resolutions: \\[32\\]"):
        lazy.predict_ms(MnasNetSpace(resolution=64).sample(__import__("numpy").random.default_rng(0)))
    assert lazy.measured_keys == 0


def test_ensure_table_reuses_a_matching_table_and_refuses_another_shape(probed_table, tmp_path):
    from latency.measurers import OrtMeasurer, OrtSettings

    folder = copy_table(probed_table, tmp_path / "t", lambda m: m.update(input={"in_channels": 1, "num_classes": 10}))
    args = dict(space="mnasnet", resolution=32, in_channels=1, num_classes=10,
                measurer=OrtMeasurer(OrtSettings(warmup=1, repeats=5)))
    found, message = ensure_table(folder, **args)
    assert found == folder and message.startswith("reusing the latency table") and "calibrated at r32" in message
    with pytest.raises(TableMismatchError, match="with input \\{'in_channels': 1, 'num_classes': 10\\}"):
        ensure_table(folder, **{**args, "in_channels": 3})
    with pytest.raises(TableMismatchError, match="setting repeats: table 5, here 20"):
        ensure_table(folder, **{**args, "measurer": OrtMeasurer(OrtSettings(warmup=1, repeats=20))})
    with pytest.raises(ValueError, match="unknown space 'nope'"):
        ensure_table(tmp_path / "other", **{**args, "space": "nope"})


@pytest.mark.slow
def test_ensure_table_builds_a_lazy_table_and_resumes_an_unfinished_one(tmp_path):
    measurer = FakeMeasurer()
    args = dict(space="mnasnet", resolution=32, in_channels=1, num_classes=10, measurer=measurer,
                calibration_specs=2, calibration_rounds=1)
    folder, message = ensure_table(tmp_path / "lazy", **args)
    measured_whole = 2 + len(ANCHOR_MODELS)  # the sampled specs and the hand-designed anchors
    assert message.startswith("built a lazy latency table") and f"{measured_whole} calibration specs at r32" in message
    manifest = json.loads((folder / MANIFEST_FILE).read_text())
    assert manifest["input"] == {"in_channels": 1, "num_classes": 10} and manifest["reference"]["baseline_ms"] > 0
    assert "r32_i1_n10" in manifest["reference"]["spec"]
    assert manifest["build"]["max_passes"] == LAZY_MAX_PASSES == 1  # one pass a layer, recorded for later layers
    calls = measurer.calls
    assert ensure_table(folder, **args)[1].startswith("reusing") and measurer.calls == calls
    manifest["reference"]["baseline_ms"], manifest["calibration"] = None, {}  # killed before finish()
    (folder / MANIFEST_FILE).write_text(json.dumps(manifest))
    _, message = ensure_table(folder, **args)
    assert message.startswith("resumed a lazy latency table") and measurer.calls < 2 * calls
    assert json.loads((folder / MANIFEST_FILE).read_text())["calibration"]["32"]["n_specs"] == measured_whole


def test_whole_model_checks_extend_pairs_to_the_precision(probed_table, tmp_path, monkeypatch):
    """NetAdapt's and the pipeline's checks go through ``LazyPredictor.measure``: pairs added
    until the interval is ``WHOLE_MODEL_PRECISION`` tight."""
    import latency.lazy as lazy_module
    from latency.paired import WHOLE_MODEL_PRECISION

    seen = {}
    monkeypatch.setattr(lazy_module, "measure_specs", lambda *args, **kwargs: seen.update(kwargs) or [])
    LazyPredictor(copy_table(probed_table, tmp_path / "t"), tolerance=5).measure(probed_specs()[:1])
    assert seen["precision"] == WHOLE_MODEL_PRECISION and seen.get("block") is None  # blocks sized by run time
