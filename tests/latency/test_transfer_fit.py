"""`mobilenas latency transfer` and `latency predict --transfer`: a table's predictor carried to
another platform from a few measurements there (latency.transfer_fit). No timing: the table's
entries are fake and the target platform's 'measurements' are a deterministic function."""
from __future__ import annotations

import json
import shutil
from types import SimpleNamespace

import pytest

from latency.lazy import LazyPredictor
from latency.learning import candidate_pool
from latency.transfer_fit import MEASUREMENTS_FILE, TRANSFER_FILE, load_transfer
from mobilenas.cli import main
from search_spaces.encoding import format_spec
from tests.latency.fakes import copy_table, make_ort_learning_table, other_cpu_family

FACTOR, REFERENCE_MS = 0.5, 2.0


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A table holding the layers of the specs `latency transfer` draws (seeds 0 and 1)."""
    folder = tmp_path_factory.mktemp("transfer") / "table"
    manifest = {"space": "mnasnet", "calibration": {"32": {}}}
    return make_ort_learning_table(folder, candidate_pool(folder, manifest, 12, 0) + candidate_pool(folder, manifest, 12, 1))


@pytest.fixture
def device(monkeypatch, source):
    """The target platform: every model runs FACTOR x the source's prediction of it, against a
    reference of REFERENCE_MS; ``fail_after`` calls it disconnects."""
    lazy = LazyPredictor(source)
    state = SimpleNamespace(calls=0, fail_after=None)

    def measure(measurer, specs, reference, **kwargs):
        if state.fail_after is not None and state.calls >= state.fail_after:
            raise RuntimeError("device disconnected")
        state.calls += 1
        ratio = FACTOR * lazy.predict_many(specs)[0]
        return [SimpleNamespace(ratio=ratio, low=ratio, high=ratio, reference_ms=REFERENCE_MS, pairs=24)]

    monkeypatch.setattr("latency.transfer_fit.measure_specs", measure)
    return state


def transfer(source, out, *extra):
    return main(["latency", "transfer", str(source), "--platform", "ort-cpu-int8", "--out", str(out),
                 "--measurements", "10", "--json", *extra])


def test_transfer_fits_and_predict_applies_it(source, tmp_path, device, capsys):
    assert transfer(source, tmp_path / "t") == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["n"] == 10 and summary["platform"] == "ort-cpu-int8" and summary["reference_ms"] == REFERENCE_MS
    assert summary["method"] == "scale" and summary["loo_abs_err_pct"] == pytest.approx(0.0, abs=1e-9)
    spec = candidate_pool(source, LazyPredictor(source).table.manifest, 12, 1)[-1]  # not among the fitted ones
    assert main(["latency", "predict", str(source), format_spec(spec), "--transfer", str(tmp_path / "t"), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["transfer"]["ratio"] == pytest.approx(FACTOR * printed["latency_ms"])
    assert printed["transfer"]["latency_ms"] == pytest.approx(printed["transfer"]["ratio"] * REFERENCE_MS)
    assert printed["transfer"]["platform"] == "ort-cpu-int8"


def test_a_disconnect_keeps_every_measurement_and_the_same_command_resumes(source, tmp_path, device, capsys):
    device.fail_after = 4
    assert transfer(source, tmp_path / "t") != 0
    assert "device disconnected" in capsys.readouterr().err
    assert len((tmp_path / "t" / MEASUREMENTS_FILE).read_text().splitlines()) == 1 + 4
    assert not (tmp_path / "t" / TRANSFER_FILE).exists()
    device.fail_after, device.calls = None, 0
    assert transfer(source, tmp_path / "t", "--seed", "1") != 0  # another sample would mix with the rows kept
    assert "fitted from another table, platform or seed" in capsys.readouterr().err and device.calls == 0
    assert transfer(source, tmp_path / "t") == 0
    assert device.calls == 6  # only the ones not measured before
    rows = (tmp_path / "t" / MEASUREMENTS_FILE).read_text().splitlines()[1:]
    assert len(rows) == 10 and len({row.split(",")[0] for row in rows}) == 10


def test_another_seed_into_the_same_folder_and_a_transfer_of_another_table_are_refused(source, tmp_path, device, capsys):
    assert transfer(source, tmp_path / "t") == 0
    assert transfer(source, tmp_path / "t", "--seed", "1") != 0
    assert "fitted from another table, platform or seed" in capsys.readouterr().err
    other = tmp_path / "other"
    shutil.copytree(source, other)
    manifest = json.loads((other / "manifest.json").read_text())
    manifest["reference"]["baseline_ms"] *= 2
    (other / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="fitted from another table"):
        load_transfer(tmp_path / "t", LazyPredictor(other))
    with pytest.raises(FileNotFoundError, match="holds no transfer.json"):
        load_transfer(tmp_path, LazyPredictor(source))


@pytest.mark.parametrize("flags, message", [(["--measurements", "0"], "--measurements = 0 is not allowed"),
                                            (["--seed", "-1"], "--seed = -1 is not allowed")])
def test_bad_options_are_refused_before_anything_is_measured(source, tmp_path, device, capsys, flags, message):
    argv = ["latency", "transfer", str(source), "--platform", "ort-cpu-int8", "--out", str(tmp_path / "t"), *flags]
    assert main(argv) != 0 and message in capsys.readouterr().err
    assert device.calls == 0 and not (tmp_path / "t").exists()


def test_transfer_features_split_the_tables_sum_by_layer_kind(source):
    from latency.transfer import KIND_PREFIX, transfer_features

    lazy = LazyPredictor(source)
    specs = candidate_pool(source, lazy.table.manifest, 12, 0)
    frame = transfer_features(lazy.table, specs)
    kinds = [c for c in frame.columns if c.startswith(KIND_PREFIX)]
    assert {"kind_ms_stem", "kind_ms_head"} <= set(kinds) and len(kinds) > 2
    assert frame[kinds].sum(axis=1).to_numpy() == pytest.approx(frame["sum_ms"].to_numpy())


def test_another_machines_table_is_carried_with_force_and_refused_where_it_lacks_layers(source, tmp_path, device,
                                                                                         capsys):
    """The nearest platform's predictor: a table of the same runtime measured on another CPU is
    refused as other hardware, carried with --force when it holds every layer of the models
    drawn, and refused before anything is measured (the table left as it was) when it does not."""
    other = copy_table(source, tmp_path / "other",
                       lambda manifest: manifest["fingerprint"].update(cpu_family=other_cpu_family()))
    assert transfer(other, tmp_path / "t") != 0
    assert "other hardware" in capsys.readouterr().err and device.calls == 0
    assert transfer(other, tmp_path / "t", "--force") == 0
    assert json.loads(capsys.readouterr().out)["n"] == 10 and device.calls == 10
    entries = (other / "entries.csv").read_text()
    assert transfer(other, tmp_path / "t2", "--force", "--seed", "5") != 0  # models whose layers it lacks
    assert "lacks" in capsys.readouterr().err and device.calls == 10
    assert (other / "entries.csv").read_text() == entries
    assert not (tmp_path / "t2" / MEASUREMENTS_FILE).exists()
