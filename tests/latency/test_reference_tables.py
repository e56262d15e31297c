"""The committed reference tables (results/latency) load, carry the full hardware identity and
an unbiased validation with its noise floor, all on paired timing."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from latency.fingerprint import MATCHED_FIELDS
from latency.keys import space_keys
from latency.predictor import LatencyPredictor
from latency.table import load_table
from latency.validation import sample_specs
from search_spaces.mnasnet_space import MnasNetSpace

ROOT = Path(__file__).resolve().parents[2] / "results" / "latency"


@pytest.mark.parametrize("resolution", [32, 224])
def test_reference_table_is_complete_identified_and_validated(resolution):
    folder = ROOT / f"mnasnet-r{resolution}"
    table = load_table(folder, force=True)  # force: the test may run on other hardware
    assert set(space_keys(MnasNetSpace(resolution=resolution))) <= set(table.keys())
    assert set(MATCHED_FIELDS) <= set(table.manifest["fingerprint"])
    spec = sample_specs(MnasNetSpace(resolution=resolution), 1, seed=3)[0]
    assert LatencyPredictor(table).predict_ms(spec) > 0
    report = json.loads((folder / "validation.json").read_text())
    assert report["n"] == 100 and "measured" in report["noise_floor"]
    assert report["passes"] == 2 and report["pairs_per_pass"] >= 24 and "paired ratio" in report["measured_as"]
    assert table.manifest["build"]["timing"] == "paired"
