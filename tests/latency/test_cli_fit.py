"""`mobilenas latency fit` and `latency predict --json` name the predictor they use (no timing:
the table's entries are fake and whole models are 'measured' by a deterministic function)."""
from __future__ import annotations

import json

import pytest

from latency.learned import PREDICTOR_FILE
from latency.learning import NARROWED_WIDTHS, candidate_pool, narrowed
from latency.table import load_table
from mobilenas.cli import main
from search_spaces.encoding import format_spec
from tests.latency.fakes import fake_table_measure, make_ort_learning_table

LOOSE: list[str] = []
FIT = ["--budget", "8", "--initial", "4", "--batch", "2", "--pool-factor", "2", "--models", "gbt", "rf", "--quiet"]


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    """A table holding the layers of the pool `latency fit` draws with FIT, measured by ONNX Runtime
    as far as its manifest says (entries fake; no signature, so opening it compares no timing)."""
    folder = tmp_path_factory.mktemp("cli-fit") / "table"
    pool = candidate_pool(folder, {"space": "mnasnet", "calibration": {"32": {}}}, 16, 0)
    return make_ort_learning_table(folder, pool + narrowed(pool, 0))


def test_narrowed_pool_shrinks_every_fourth_spec_by_a_seeded_multiplier(tmp_path):
    pool = candidate_pool(tmp_path, {"space": "mnasnet", "calibration": {"32": {}}}, 16, 0)
    out = narrowed(pool, 0)
    assert out == narrowed(pool, 0) and out != narrowed(pool, 1)
    for i, (before, after) in enumerate(zip(pool, out)):
        if i % 4 != 3:
            assert after == before
            continue
        ratio = after.blocks[-1].out_channels / before.blocks[-1].out_channels
        assert NARROWED_WIDTHS[0] - 0.15 <= ratio <= NARROWED_WIDTHS[1] + 0.15
        assert after.stem.out_channels <= before.stem.out_channels
    assert narrowed(pool, 0, exclude={format_spec(out[3])})[3] == pool[4]


@pytest.fixture
def fake_measure(monkeypatch):
    monkeypatch.setattr("latency.learning.table_measure", fake_table_measure)


def test_predict_names_the_calibrated_table_without_a_learned_model(table, capsys):
    spec = candidate_pool(table, load_table(table).manifest, 16, 0)[0]
    assert not (table / PREDICTOR_FILE).exists()
    assert main(["latency", "predict", str(table), format_spec(spec), "--json", *LOOSE]) == 0
    assert json.loads(capsys.readouterr().out)["predictor"] == "calibrated"


def test_fit_writes_a_predictor_that_predict_then_names(table, capsys, fake_measure):
    assert main(["latency", "fit", str(table), *FIT, "--json", *LOOSE]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["model_type"] in ("gbt", "rf") and summary["n"] == 8 and summary["measured_now"] == 8
    assert summary["stored"] is True
    assert set(summary["cross_validation"]) == {"calibrated", "gbt", "rf"}
    document = json.loads((table / PREDICTOR_FILE).read_text())
    assert document["measurements"]["rows"] == 8 and document["sampling"]["budget"] == 8
    rows = [line.split(",")[0] for line in (table / "measurements.csv").read_text().splitlines()[1:]]
    pool = {format_spec(spec) for spec in candidate_pool(table, load_table(table).manifest, 16, 0)}
    assert any(row not in pool for row in rows)  # a narrowed spec among the first ones measured
    measured = rows[0]
    assert main(["latency", "predict", str(table), measured, "--json", *LOOSE]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["predictor"] == "learned" and out["latency_ms"] > 0
    assert main(["latency", "predict", str(table), measured, *LOOSE]) == 0
    assert "(learned;" in capsys.readouterr().out
    # a rerun at the same budget measures nothing and refits on the same rows
    assert main(["latency", "fit", str(table), *FIT, "--json", *LOOSE]) == 0
    assert json.loads(capsys.readouterr().out)["measured_now"] == 0


def test_fit_rejects_a_bad_option_before_opening_the_table(tmp_path, capsys):
    assert main(["latency", "fit", str(tmp_path / "none"), "--budget", "0"]) == 2
    assert "budget" in capsys.readouterr().err
