"""`mobilenas latency ...`: build (lazy, tiny), validate, predict, show, and one-line errors (exit 2)."""
from __future__ import annotations

import json

import pytest

from mobilenas.cli import main
from search_spaces.encoding import format_spec, parse_spec

LOOSE = ["--drift-tolerance", "5"]  # the fixture table is built while other jobs load the machine
TINY = ["--repeats", "3", "--warmup", "1", "--calibration-specs", "6", "--calibration-rounds", "1", "--quiet"]


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    """A lazy table (layers of 6 calibration specs, real ONNX Runtime, 32x32) built by the CLI."""
    folder = tmp_path_factory.mktemp("cli") / "table"
    assert main(["latency", "build", "--space", "mnasnet", "--resolution", "32", "--out", str(folder), "--lazy", *TINY]) == 0
    return folder


def _calibration_spec(folder) -> str:
    return (folder / "calibration.csv").read_text().splitlines()[1].split(",")[1]


def test_predict_json_prints_latency_ms(table, capsys):
    spec = _calibration_spec(table)
    assert main(["latency", "predict", str(table), spec, "--json", *LOOSE]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["latency_ms"] > 0 and out["spec"] == format_spec(parse_spec(spec))


def test_a_lazy_build_records_one_pass_a_layer(table):
    """A lazy table measures each layer once (latency.lazy.LAZY_MAX_PASSES), and says so for later layers."""
    assert json.loads((table / "manifest.json").read_text())["build"]["max_passes"] == 1


def test_max_passes_given_is_recorded(tmp_path):
    folder = tmp_path / "two"
    argv = ["latency", "build", "--space", "mnasnet", "--resolution", "32", "--out", str(folder), "--lazy",
            "--max-passes", "2", *TINY[:4], "--calibration-specs", "1", "--calibration-rounds", "1", "--quiet"]
    assert main(argv) == 0
    assert json.loads((folder / "manifest.json").read_text())["build"]["max_passes"] == 2


def test_show_summarises_device_and_calibration(table, capsys):
    assert main(["latency", "show", str(table)]) == 0
    out = capsys.readouterr().out
    assert "cpu_model=" in out and "calibration r32" in out


def test_validate_writes_validation_json(table, capsys):
    assert main(["latency", "validate", str(table), "-n", "2", "--pairs", "4", "--passes", "2", "--measure-missing", "--quiet", *LOOSE]) == 0
    report = json.loads((table / "validation.json").read_text())
    for name in ("n", "within_5pct", "within_10pct", "mean_abs_err_pct", "p90_abs_err_pct", "spearman"):
        assert name in report
    assert report["n"] == 2 and (table / "validation.png").exists()
    assert report["pairs_per_pass"] == 4 and report["passes"] == 2 and "noise_floor" in report and "kendall" in report
    assert "noise floor (pass 2 vs pass 1)" in capsys.readouterr().out


def test_rerunning_a_finished_build_measures_nothing_new(table, capsys):
    before = (table / "entries.csv").read_text()
    assert main(["latency", "build", "--space", "mnasnet", "--resolution", "32", "--out", str(table), "--lazy", *TINY]) == 0
    assert (table / "entries.csv").read_text() == before


@pytest.mark.parametrize("argv, message", [
    (["latency", "build", "--space", "nope", "--resolution", "32"], "unknown space 'nope'"),
    (["latency", "build", "--space", "mnasnet", "--resolution", "32", "--measurer", "command"], "needs --command"),
    (["latency", "show", "/nonexistent/table"], "is not a latency table folder"),
])
def test_user_errors_are_one_line_and_exit_2(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_predict_missing_layer_exits_2(table, capsys):
    spec = "r32_i3_n1000|stem_k3_s2_c16_hs|ir_k7_s1_e16_c16_se0_re_sk0|head_c960_h1280_hs_d0.2"
    assert main(["latency", "predict", str(table), spec, *LOOSE]) == 2
    assert "is not in the table" in capsys.readouterr().err


def test_table_from_other_settings_exits_2_naming_the_difference(table, capsys):
    argv = ["latency", "build", "--space", "mnasnet", "--resolution", "32", "--out", str(table), "--lazy", *TINY]
    argv[argv.index("3")] = "7"  # --repeats 7
    assert main(argv) == 2
    assert "setting repeats: table 3, here 7" in capsys.readouterr().err


def test_predict_measure_missing_extends_the_table_lazily(table, capsys):
    argv = ["latency", "predict", str(table), "mobilenetv3-small", "--resolution", "32", "--json", *LOOSE]
    assert main(argv) == 2  # not in the space: missing layers
    capsys.readouterr()
    assert main([*argv, "--measure-missing"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["layers"] == 13  # (the value itself rests on a 6-spec calibration measured under load)
    assert main(argv) == 0  # now in the table
    assert json.loads(capsys.readouterr().out)["latency_ms"] == first["latency_ms"]


def _edited_copy(table, tmp_path, edit):
    import shutil

    folder = tmp_path / "copy"
    shutil.copytree(table, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    edit(manifest)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def test_a_slower_moment_is_never_refused_and_the_speed_factor_is_reported(table, tmp_path, capsys):
    folder = _edited_copy(table, tmp_path, lambda m: m["reference"].update(baseline_ms=m["reference"]["baseline_ms"] / 4))
    assert main(["latency", "predict", str(folder), _calibration_spec(table), "--json", *LOOSE]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["drift"]["action"] == "ok" and out["speed_factor"] == out["drift"]["ratio"]
    assert out["latency_ms_now"] == pytest.approx(out["latency_ms"] * out["speed_factor"])


def test_other_signature_exits_2_with_one_line_then_rescales_on_request(table, tmp_path, capsys):
    def other(manifest):
        manifest["signature"]["ratios"] = {k: 3 * v for k, v in manifest["signature"]["ratios"].items()}

    folder = _edited_copy(table, tmp_path, other)
    argv = ["latency", "predict", str(folder), _calibration_spec(table), "--json"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "signature differs" in err and "--rescale" in err
    assert main([*argv, "--rescale"]) == 0
    rescaled = json.loads(capsys.readouterr().out)
    assert rescaled["drift"]["action"] == "rescaled"
    assert main([*argv, "--force"]) == 0
    forced = json.loads(capsys.readouterr().out)
    assert forced["drift"]["action"] == "forced"
    assert rescaled["latency_ms"] == pytest.approx(forced["latency_ms"] * rescaled["drift"]["ratio"], rel=1e-6)


def test_table_with_other_cpu_exits_2_naming_the_field(table, tmp_path, capsys):
    folder = _edited_copy(table, tmp_path, lambda m: m["fingerprint"].update(cpu_model_id="no-such-model"))
    assert main(["latency", "predict", str(folder), _calibration_spec(table)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "cpu_model_id: table 'no-such-model'" in err
