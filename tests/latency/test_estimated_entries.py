"""Ranking the learned predictor's pool without measuring its layers first
(latency.estimated_entries, latency.learning.fit_table). No timing: fake entries and fake
whole-model measurements."""
from __future__ import annotations

import numpy as np
import pytest

from latency.estimated_entries import EstimatedEntries
from latency.keys import spec_keys
from latency.active import SamplingConfig, read_measurements
from latency.fitting import FitConfig
from latency.learning import candidate_pool, fit_table
from latency.table import load_table
from latency.validation import sample_specs
from search_spaces.encoding import parse_spec
from search_spaces.mnasnet_space import MnasNetSpace
from tests.latency.fakes import fake_key_row, fake_table_measure, make_learning_table, make_ort_learning_table


@pytest.fixture(scope="module")
def specs():
    return sample_specs(MnasNetSpace(resolution=32, in_channels=1, num_classes=10), 40, seed=11)


@pytest.fixture(scope="module")
def full_table(tmp_path_factory, specs):
    return load_table(make_learning_table(tmp_path_factory.mktemp("est") / "full", specs))


def _keys(specs):
    return {key for spec in specs for key in spec_keys(spec)}


def test_known_entries_are_read_and_the_others_estimated_from_them(full_table, specs):
    known = _keys(specs[:25])
    view = EstimatedEntries(full_table, known)
    assert all(view.lookup(k) == full_table.lookup(k) and not view.estimated(k) for k in known)
    others = sorted(_keys(specs) - known)
    assert others and all(view.estimated(k) for k in others)
    errors = np.array([view.lookup(k) / full_table.lookup(k) - 1 for k in others])
    assert np.median(np.abs(errors)) < 0.15  # the fake entries are a smooth function of a layer's size
    assert all(view.lookup_cold(k) > 0 for k in others)


def test_estimates_depend_only_on_the_known_entries(full_table, specs, tmp_path):
    known = _keys(specs[:25])
    smaller = load_table(make_learning_table(tmp_path / "smaller", specs[:25]))
    unknown = sorted(_keys(specs) - known)[:30]
    assert [EstimatedEntries(full_table, known).lookup(k) for k in unknown] == \
        [EstimatedEntries(smaller, known).lookup(k) for k in unknown]


def test_too_few_known_layers_is_a_clear_error(full_table, specs):
    with pytest.raises(ValueError, match="too few"):
        EstimatedEntries(full_table, list(spec_keys(specs[0]))[:2])


def test_fit_measures_the_layers_of_the_models_it_picks_not_of_the_whole_pool(tmp_path, monkeypatch):
    folder = tmp_path / "table"
    probe = {"space": "mnasnet", "calibration": {"32": {}}}
    pool = candidate_pool(folder, probe, 32, 0)
    make_ort_learning_table(folder, pool[:3])  # the table holds the layers of 3 models only
    monkeypatch.setattr("latency.build.measure_key", fake_key_row)

    monkeypatch.setattr("latency.learning.table_measure", fake_table_measure)
    sampling = SamplingConfig(budget=8, initial=4, batch=2, pool_factor=4, trees=20, min_measured=100)
    summary = fit_table(folder, sampling=sampling, fit=FitConfig(model_types=("gbt",), folds=3, gbt_trees=20))
    measured = [parse_spec(s) for s in read_measurements(folder)["spec"]]
    assert summary["n"] == 8 and len(summary["cross_validation"]) == 2
    held = set(load_table(folder, force=True).keys())
    assert _keys(measured) <= held  # every fitted model's layers were measured for real
    assert not _keys(pool) <= held  # but not the layers of candidates never picked
