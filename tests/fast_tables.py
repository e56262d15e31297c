"""Small latency tables built in a second or two for state-file tests: a torch measurer whose
timings are a deterministic function of the layer (no timing loops, no ONNX export)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from latency.build import BuildConfig, TableBuilder
from latency.keys import LayerKey, space_keys
from latency.measurers import TorchMeasurer, TorchSettings
from latency.validation import sample_specs
from search_spaces.mnasnet_space import MnasNetSpace

SPACE = MnasNetSpace(resolution=32)


class FakeTorchMeasurer(TorchMeasurer):
    """Records as the real torch measurer (so a table reopens with it) but 'times' a module by
    its parameter count: 0.01 ms + 1 ms per million parameters, with a tiny spread."""

    def __init__(self) -> None:
        super().__init__(TorchSettings(threads=1, warmup=0, repeats=3))

    def runner(self, model: torch.nn.Module, input_shape: tuple[int, ...]) -> "FakeRunner":
        return FakeRunner(0.01 + sum(p.numel() for p in model.parameters()) / 1e6)


class FakeRunner:
    """``run(repeats)``: a fixed time per run with a tiny spread, as the torch runner's samples."""

    def __init__(self, ms: float) -> None:
        self.ms = ms

    def run(self, repeats: int, warmup: int = 0) -> np.ndarray:
        return self.ms + np.linspace(0, 1e-5, repeats)


def small_keys(n: int) -> list[LayerKey]:
    return sorted(space_keys(SPACE))[:n]


def small_builder(folder: Path, **kwargs) -> TableBuilder:
    reference = sample_specs(SPACE, 1, seed=99)[0]
    config = BuildConfig(batch_keys=4, calibration_group=2, calibration_rounds=1)
    return TableBuilder(folder, FakeTorchMeasurer(), reference, space="mnasnet", config=config, **kwargs)


def build_small_table(folder: Path, n_keys: int = 12) -> Path:
    """A finished table of ``n_keys`` keys with a valid calibration entry for 32 and a report."""
    import json

    builder = small_builder(folder)
    builder.measure_keys(small_keys(n_keys))
    builder.finish()
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["calibration"] = {"32": {"features": ["sum_ms"], "coef": [1.0], "intercept_ms": 0.0, "n_specs": 0, "loo": {}}}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    report = {"n": 3, "within_5pct": 1.0, "within_10pct": 1.0, "mean_abs_err_pct": 1.0, "p90_abs_err_pct": 2.0,
              "mean_err_pct": 0.5, "spearman": 1.0}
    (folder / "validation.json").write_text(json.dumps(report))
    return folder


def calibration_specs(n: int) -> list:
    """``n`` whole-model specs of the small space (their layers join the table)."""
    return sample_specs(SPACE, n, seed=7)
