"""The learned latency predictor: deterministic features, JSON round trip, refusal of corrupt or
foreign files, active sampling by uncertainty, resume without re-measuring (latency.features,
latency.learned, latency.fitting, latency.active). No timing: fake tables and fake measurements."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from latency.active import MEASUREMENTS_FILE, ActiveSampler, SamplingConfig, most_uncertain, read_measurements
from latency.features import FEATURE_NAMES, feature_matrix, model_features, table_free_features
from latency.fitting import FitConfig, fit_document, make_estimator, random_forest
from latency.learned import PREDICTOR_FILE, load_model, model_from_dict, residual_targets, save_model
from latency.predictors import CALIBRATED, LEARNED, best_predictor, table_predictors
from latency.table import load_table
from latency.validation import sample_specs
from search_spaces.encoding import format_spec
from search_spaces.mnasnet_space import MnasNetSpace
from storage.statefiles import StateFileError
from tests.latency.fakes import fake_whole_model_ms, make_learning_table

SMALL = FitConfig(folds=3, gbt_trees=40, rf_trees=30, mlp_hidden=(16,))


@pytest.fixture(scope="module")
def specs():
    return sample_specs(MnasNetSpace(resolution=32, in_channels=1, num_classes=10), 40, seed=5)


@pytest.fixture(scope="module")
def learning_table(tmp_path_factory, specs):
    return make_learning_table(tmp_path_factory.mktemp("learned") / "table", specs)


def _fake_measure(table, calls=None):
    def measure(spec):
        if calls is not None:
            calls.append(format_spec(spec))
        ms = fake_whole_model_ms(model_features(table, spec))
        return {"measured_ms": ms, "ratio": ms, "ratio_low": ms, "ratio_high": ms, "reference_ms": 1.0, "pairs": 1,
                "baseline_ms": 1.0}
    return measure


def _fitted(table, specs, folder, model_types=("gbt",)):
    x = feature_matrix(table, specs)
    measured = [fake_whole_model_ms(model_features(table, s)) for s in specs]
    (folder / MEASUREMENTS_FILE).write_text("spec\n" + "\n".join(format_spec(s) for s in specs) + "\n")
    config = FitConfig(model_types=model_types, folds=3, gbt_trees=40, rf_trees=30, mlp_hidden=(16,))
    return x, measured, fit_document(x, measured, table.manifest, folder / MEASUREMENTS_FILE, config)


def test_features_are_deterministic_and_in_a_fixed_order(learning_table, specs):
    first, again = load_table(learning_table), load_table(learning_table)
    rows = [model_features(first, s) for s in specs[:5]]
    assert all(tuple(row) == FEATURE_NAMES for row in rows)
    assert rows == [model_features(again, s) for s in specs[:5]]
    matrix = feature_matrix(first, specs[:5])
    assert matrix.shape == (5, len(FEATURE_NAMES)) and np.all(np.isfinite(matrix))
    assert np.array_equal(matrix, feature_matrix(again, specs[:5]))
    row = rows[0]
    assert row["pos0_ms"] > 0 and row[f"pos{len(specs[0].blocks)}_ms"] == 0.0  # positions past the last block
    assert row["n_bneck"] + row["n_conv"] == len(specs[0].blocks)


def test_table_free_features_are_the_tables_own_figures_of_them(learning_table, specs):
    table = load_table(learning_table)
    for spec in specs[:5]:
        free, full = table_free_features(spec), model_features(table, spec)
        assert {"n_layers", "madds_m", "n_k5", "n_se"} <= set(free)
        assert free == {name: full[name] for name in free}


@pytest.mark.parametrize("model_type", ["gbt", "rf", "mlp"])
def test_save_and_load_give_identical_predictions(learning_table, specs, tmp_path, model_type):
    folder = shutil.copytree(learning_table, tmp_path / "t")
    table = load_table(folder)
    x, measured, document = _fitted(table, specs, folder, (model_type,))
    before = model_from_dict(model_type, document["model"]).raw(x)
    estimator = make_estimator(model_type, SMALL).fit(x, residual_targets(measured, x[:, 0]))
    assert np.allclose(before, estimator.predict(x), rtol=0, atol=1e-9)  # the JSON dump computes what sklearn does
    save_model(folder, document)
    loaded = load_model(folder, table.manifest)
    assert loaded.model_type == model_type and np.array_equal(loaded.model.raw(x), before)
    one = loaded.model.raw(x[:1])  # the one-spec path walks trees in plain Python
    if model_type == "mlp":  # a one-row matrix product may take another BLAS kernel than the batch's (CPU-dependent)
        assert np.allclose(one, before[:1], rtol=1e-12, atol=0)
    else:
        assert np.array_equal(one, before[:1])
    assert document["measurements"]["rows"] == len(specs) and len(document["measurements"]["sha256"]) == 64


def _corrupt(document, edit):
    edit(document)
    return document


@pytest.mark.parametrize("edit, field", [
    (lambda d: d.pop("model"), "'model'"),
    (lambda d: d.update(schema_version=99), "schema_version"),
    (lambda d: d.update(kind="something-else"), "'kind'"),
    (lambda d: d.update(model_type="xgboost"), "'model_type'"),
    (lambda d: d.update(feature_names=d["feature_names"][:-1]), "'feature_names'"),
    (lambda d: d["table"].update(reference_spec="another"), "'table.reference_spec'"),
    (lambda d: d["table"].update(fingerprint_sha256="0" * 64), "'table.fingerprint_sha256'"),
    (lambda d: d["model"].update(trees=[{"children_left": [1]}]), "'model'"),
])
def test_a_corrupt_or_foreign_predictor_json_is_refused_in_one_line(learning_table, specs, tmp_path, edit, field):
    folder = shutil.copytree(learning_table, tmp_path / "t")
    table = load_table(folder)
    _, _, document = _fitted(table, specs[:12], folder)
    save_model(folder, _corrupt(document, edit))
    with pytest.raises(StateFileError) as error:
        load_model(folder, table.manifest)
    message = str(error.value)
    assert str(folder / PREDICTOR_FILE) in message and field in message and "\n" not in message


def test_a_predictor_json_that_is_not_json_is_refused(learning_table, tmp_path):
    folder = shutil.copytree(learning_table, tmp_path / "t")
    (folder / PREDICTOR_FILE).write_text('{"schema_version": 1, "kind"')
    with pytest.raises(StateFileError, match=f"{folder / PREDICTOR_FILE}: .*not valid JSON"):
        load_model(folder, load_table(folder).manifest)


def test_most_uncertain_picks_the_largest_tree_spread():
    rng = np.random.default_rng(0)
    x, pool = rng.normal(size=(40, 5)), rng.normal(size=(60, 5)) * 3
    y = np.sin(x[:, 0]) + x[:, 1] ** 2
    picked, spread, _ = most_uncertain(x, y, pool, 7, trees=25, seed=3)
    forest = random_forest(25, 3).fit(x, y)
    expected = np.stack([tree.predict(pool) for tree in forest.estimators_], axis=1).std(axis=1)
    assert np.allclose(spread, expected)
    assert list(picked) == list(np.argsort(-expected, kind="stable")[:7])


def test_sampler_measures_uniform_first_then_the_most_uncertain(learning_table, specs, tmp_path):
    folder = shutil.copytree(learning_table, tmp_path / "t")
    table = load_table(folder)
    config = SamplingConfig(budget=16, initial=8, batch=4, trees=20, target_within_5pct=1.0, min_measured=100)
    sampler = ActiveSampler(folder, specs, lambda s: feature_matrix(table, s), _fake_measure(table), config)
    sampler.run()
    frame = read_measurements(folder)
    assert len(frame) == 16 and frame["spec"].is_unique
    assert list(frame["spec"][:8]) == [format_spec(s) for s in specs[:8]]  # the pool's first, in order
    assert set(frame["source"][8:]) == {"uncertain"}
    done = [s for s in specs if format_spec(s) in set(frame["spec"][:8])]
    measured = frame["measured_ms"].to_numpy()[:8]
    picked, spreads, _ = ActiveSampler(folder, specs, sampler.features, sampler.measure, config).next_batch(done, measured)
    assert [format_spec(specs[i]) for i in picked] == list(frame["spec"][8:12])
    assert spreads == sorted(spreads, reverse=True)


def test_an_interrupted_sampling_resumes_without_measuring_again(learning_table, specs, tmp_path):
    config = SamplingConfig(budget=18, initial=6, batch=4, trees=20, target_within_5pct=1.0, min_measured=100)
    straight = shutil.copytree(learning_table, tmp_path / "straight")
    table = load_table(straight)
    features = lambda s: feature_matrix(table, s)  # noqa: E731
    ActiveSampler(straight, specs, features, _fake_measure(table), config).run()

    folder = shutil.copytree(learning_table, tmp_path / "killed")
    calls: list[str] = []

    def dies_after_seven(spec):
        if len(calls) == 7:
            raise KeyboardInterrupt  # a kill while the 8th model is in flight
        return _fake_measure(table, calls)(spec)

    with pytest.raises(KeyboardInterrupt):
        ActiveSampler(folder, specs, features, dies_after_seven, config).run()
    assert len(read_measurements(folder)) == 7
    resumed: list[str] = []
    summary = ActiveSampler(folder, specs, features, _fake_measure(table, resumed), config).run()
    assert summary["measured_now"] == 11 and not set(resumed) & set(calls)
    assert list(read_measurements(folder)["spec"]) == list(read_measurements(straight)["spec"])


def test_a_torn_measurement_row_is_measured_again_not_misread(learning_table, specs, tmp_path):
    folder = shutil.copytree(learning_table, tmp_path / "t")
    table = load_table(folder)
    config = SamplingConfig(budget=5, initial=5, batch=1, trees=10)
    ActiveSampler(folder, specs, lambda s: feature_matrix(table, s), _fake_measure(table), config).run()
    path = folder / MEASUREMENTS_FILE
    path.write_text(path.read_text()[:-15])  # a kill mid-append
    assert len(read_measurements(folder)) == 4
    calls: list[str] = []
    ActiveSampler(folder, specs, lambda s: feature_matrix(table, s), _fake_measure(table, calls), config).run()
    assert len(calls) == 1 and len(read_measurements(folder)) == 5


def test_table_predictors_and_the_learned_fallback_outside_its_range(learning_table, specs, tmp_path):
    folder = shutil.copytree(learning_table, tmp_path / "t")
    table = load_table(folder)
    assert best_predictor(table).name == CALIBRATED and set(table_predictors(table)) == {"table-sum", CALIBRATED}
    _, _, document = _fitted(table, specs[:20], folder)
    save_model(folder, document)
    predictors = table_predictors(table)
    assert set(predictors) == {"table-sum", CALIBRATED, LEARNED} and best_predictor(table).name == LEARNED
    inside = predictors[LEARNED].predict_named(specs[:3])
    assert [name for _, name in inside] == [LEARNED] * 3
    biggest = max(specs, key=lambda s: model_features(table, s)["calibrated_ms"])
    if biggest not in specs[:20]:  # outside the fitted range: the calibrated prediction, named
        value, name = predictors[LEARNED].predict_named([biggest])[0]
        assert name == CALIBRATED and value == pytest.approx(predictors[CALIBRATED].predict_ms(biggest))


def test_a_rescaled_learned_predictor_scales_every_answer(learning_table, specs, tmp_path):
    from latency.predictors import LearnedPredictor

    folder = shutil.copytree(learning_table, tmp_path / "t")
    table = load_table(folder)
    _, _, document = _fitted(table, specs[:20], folder)
    save_model(folder, document)
    model = load_model(folder, table.manifest)
    plain, scaled = LearnedPredictor(table, model), LearnedPredictor(table, model, scale=1.3)
    for (a, name_a), (b, name_b) in zip(plain.predict_named(specs), scaled.predict_named(specs)):
        assert b == pytest.approx(1.3 * a) and name_a == name_b


def test_validation_scores_every_predictor_on_the_same_measurements_beside_the_noise_floor(learning_table, specs,
                                                                                        tmp_path):
    import pandas as pd

    from latency.validation import score_predictors

    folder = shutil.copytree(learning_table, tmp_path / "t")
    table = load_table(folder)
    _, _, document = _fitted(table, specs[:20], folder)
    save_model(folder, document)
    held_out = specs[20:30]
    truth = [fake_whole_model_ms(model_features(table, s)) for s in held_out]
    frame = pd.DataFrame({"spec": [format_spec(s) for s in held_out], "measured_ms": truth,
                          "pass1_ms": [t * 1.01 for t in truth], "pass2_ms": [t * 0.99 for t in truth]})
    scores = score_predictors(table_predictors(table), held_out, frame)
    assert set(scores) == {"table-sum", CALIBRATED, LEARNED}
    for name, figures in scores.items():
        assert figures["n"] == 10 and figures["noise_floor"]["measured"]["within_5pct"] == 1.0
        assert sum(figures["answered_by"].values()) == 10 and f"{name}_ms" in frame
    assert scores[LEARNED]["mean_abs_err_pct"] < scores[CALIBRATED]["mean_abs_err_pct"]


def test_a_model_that_does_not_beat_the_calibrated_table_is_marked_so(learning_table, specs, tmp_path):
    folder = shutil.copytree(learning_table, tmp_path / "t")
    table = load_table(folder)
    x = feature_matrix(table, specs[:12])
    (folder / MEASUREMENTS_FILE).write_text("spec\n")
    calibrated = x[:, FEATURE_NAMES.index("calibrated_ms")]  # nothing left to learn
    document = fit_document(x, calibrated, table.manifest, folder / MEASUREMENTS_FILE, SMALL)
    assert document["beats_calibrated"] is False
    _, _, learnable = _fitted(table, specs[:20], folder)
    assert learnable["beats_calibrated"] is True


def test_lazy_predict_ms_equals_explain_with_and_without_a_learned_model(learning_table, specs, tmp_path, monkeypatch):
    from latency.drift import DriftReport
    from latency.lazy import LazyPredictor

    folder = shutil.copytree(learning_table, tmp_path / "t")
    report = DriftReport(1.0, 1.0, 1.0, 0.1, "ok")
    monkeypatch.setattr("latency.lazy.open_table", lambda folder, **kw: (load_table(folder), report))
    lazy = LazyPredictor(folder)
    assert [lazy.predict_ms(s) for s in specs[:5]] == [lazy.explain(s).latency_ms for s in specs[:5]]
    assert {lazy.explain(s).predictor for s in specs[:5]} == {CALIBRATED}
    save_model(folder, _fitted(load_table(folder), specs[:20], folder)[2])
    lazy.reload_learned()
    assert [lazy.predict_ms(s) for s in specs[:5]] == [lazy.explain(s).latency_ms for s in specs[:5]]
    assert {lazy.explain(s).predictor for s in specs[:5]} == {LEARNED}
    assert lazy.predict_many(specs[:5]) == [lazy.predict_ms(s) for s in specs[:5]]
