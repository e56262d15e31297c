"""A deterministic fake measurer for tests that must not depend on timing."""
from __future__ import annotations

import numpy as np

from latency.measurers import ModelLike, onnx_bytes_of


class FakeMeasurer:
    """Deterministic stand-in: latency proportional to the ONNX size (no timing, fast)."""

    name = "fake"

    def __init__(self, repeats: int = 5) -> None:
        self.repeats = repeats
        self.calls = 0

    def settings_dict(self) -> dict[str, object]:
        return {"measurer": self.name, "batch": 1, "repeats": self.repeats}

    def measure(self, model: ModelLike, input_shape: tuple[int, ...]) -> np.ndarray:
        self.calls += 1
        size = len(onnx_bytes_of(model, (1, *input_shape[-3:])))
        return np.full(self.repeats, 0.01 + size / 1e6) + np.linspace(0, 1e-4, self.repeats)


def probed_specs() -> list:
    """The specs whose layers :func:`make_probed_table` holds (MnasNet space, 32x32)."""
    from latency.validation import sample_specs
    from search_spaces.mnasnet_space import MnasNetSpace

    return sample_specs(MnasNetSpace(resolution=32), 1, seed=0)


def make_probed_table(folder):
    """A small table (fake entries for one spec's layers, a set calibration) whose measurer
    is ONNX Runtime (5 runs) and whose reference baseline and signature are what ONNX Runtime reads now."""
    import json

    from latency.build import BuildConfig, TableBuilder
    from latency.drift import record_signature
    from latency.measurers import OrtMeasurer, OrtSettings
    from latency.table import MANIFEST_FILE
    from latency.validation import sample_specs
    from search_spaces.mnasnet_space import MnasNetSpace

    ort = OrtMeasurer(OrtSettings(warmup=1, repeats=5))
    reference = sample_specs(MnasNetSpace(resolution=32), 1, seed=99)[0]
    builder = TableBuilder(folder, FakeMeasurer(), reference, space="mnasnet", config=BuildConfig(batch_keys=50))
    builder.ensure_specs(probed_specs())
    builder.finish()
    manifest = json.loads((folder / MANIFEST_FILE).read_text())
    manifest["calibration"] = {"32": {"features": ["sum_ms", "cold_sum_ms"], "coef": [0.3, 0.8], "intercept_ms": 0.05,
                                      "n_specs": 0, "loo": {}}}
    manifest["measurer"] = ort.settings_dict()
    manifest["signature"] = record_signature(ort, reference, resolution=reference.resolution)  # fast probes
    manifest["reference"]["baseline_ms"] = manifest["signature"]["reference_ms"]
    (folder / MANIFEST_FILE).write_text(json.dumps(manifest))
    return folder


def copy_table(folder, target, edit=None):
    """A copy of the table in ``folder`` at ``target``, its manifest passed through ``edit``."""
    import json
    import shutil

    shutil.copytree(folder, target)
    if edit is not None:
        manifest = json.loads((target / "manifest.json").read_text())
        edit(manifest)
        (target / "manifest.json").write_text(json.dumps(manifest))
    return target


def other_cpu_family() -> str:
    """A CPU family that is certainly not this machine's (tests must pass on every machine)."""
    from latency.fingerprint import device_fingerprint

    return "998" if str(device_fingerprint().get("cpu_family")) == "999" else "999"


def fake_key_row(measurer, key, config):
    """A table row for ``key`` from its MAdds and size alone (no export, no timing): what
    :func:`latency.build.measure_key` returns, for tables that tests fill quickly."""
    from latency.keys import key_activations, key_cost

    params, madds = key_cost(key)
    warm = 0.002 + madds / 2e9 + key_activations(key) / 5e8
    cold = warm + params * 4 / 4e9
    return {**key.as_row(), "median_ms": warm, "raw_median_ms": warm, "p90_ms": warm, "std_ms": 0.0, "n": 5,
            "cold_median_ms": cold, "raw_cold_median_ms": cold, "cold_n": 5, "copies": 1, "ref_ms": float("nan"),
            "params": params, "madds": madds}


def fake_whole_model_ms(features: dict) -> float:
    """A deterministic 'measured' latency with what a table sum misses: a per-model overhead and
    a cache penalty growing with the weights beyond L2 (learnable from the features)."""
    import math

    return features["calibrated_ms"] * (1.0 + 0.15 * math.tanh(features["weight_over_l2"] / 8 - 1)) + 0.01


def fake_table_measure(lazy, pairs):
    """Stands in for :func:`latency.learning.table_measure`: whole models 'measured' by
    :func:`fake_whole_model_ms` of their features in ``lazy``'s table."""
    from latency.features import model_features

    def measure(spec):
        ms = fake_whole_model_ms(model_features(lazy.table, spec))
        return {"measured_ms": ms, "ratio": ms, "ratio_low": ms, "ratio_high": ms, "reference_ms": 1.0,
                "pairs": pairs, "baseline_ms": 1.0}
    return measure


def make_learning_table(folder, specs):
    """A table (fake per-layer entries of ``specs``, FakeMeasurer, a set calibration at 32x32)
    for the learned predictor's tests; built in seconds (no ONNX export per key)."""
    import json
    from unittest import mock

    from latency.build import BuildConfig, TableBuilder
    from latency.table import MANIFEST_FILE
    from latency.validation import sample_specs
    from search_spaces.mnasnet_space import MnasNetSpace

    reference = sample_specs(MnasNetSpace(resolution=32), 1, seed=99)[0]
    with mock.patch("latency.build.measure_key", fake_key_row), \
            mock.patch("latency.build.record_signature", lambda measurer, ref: {"ratios": {}, "reference_ms": 1.0}):
        builder = TableBuilder(folder, FakeMeasurer(), reference, space="mnasnet", config=BuildConfig(batch_keys=500))
        builder.ensure_specs(list(specs) + [reference])
        builder.finish()
    manifest = json.loads((folder / MANIFEST_FILE).read_text())
    manifest["calibration"] = {"32": {"features": ["sum_ms", "cold_sum_ms"], "coef": [0.5, 0.6], "intercept_ms": 0.02,
                                      "n_specs": 0, "loo": {}}}
    (folder / MANIFEST_FILE).write_text(json.dumps(manifest))
    return folder


def make_ort_learning_table(folder, specs):
    """:func:`make_learning_table` recorded as measured by ONNX Runtime (so commands that open it
    build a real measurer) and without a signature (so opening it compares no timing)."""
    import json

    from latency.measurers import OrtMeasurer, OrtSettings

    make_learning_table(folder, specs)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["measurer"] = OrtMeasurer(OrtSettings(warmup=1, repeats=5)).settings_dict()
    manifest.pop("signature", None)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder
