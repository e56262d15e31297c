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
    manifest["signature"] = record_signature(ort, reference)
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
