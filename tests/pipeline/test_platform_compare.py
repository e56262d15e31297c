"""``mobilenas platforms compare``: settings, the matrix's fronts and verdicts, its report, and one
small run end to end (slow)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from latency.platforms import Platform, save_platform
from pipeline.compare import CompareConfig, netadapt_config
from pipeline.platform_matrix import mark_fronts, read_matrix, verdicts
from pipeline.platform_report import describe_architecture, plot_matrix
from search_spaces.reference import reference_spec

NAMES = ("a", "b")


def _cells() -> list[dict]:
    """Model 'a' is fast on a and slow on b, 'b' the reverse; 'a' is the more accurate."""
    ratios = {("a", "a"): 0.98, ("a", "b"): 1.20, ("b", "a"): 1.10, ("b", "b"): 0.97}
    return [{"found_for": f, "measured_on": m, "latency_ratio": r, "latency_ratio_low": r - 0.02,
             "latency_ratio_high": r + 0.02, "top1": 0.60 if f == "a" else 0.55} for (f, m), r in ratios.items()]


def test_fronts_and_verdicts_follow_the_cells():
    cells = _cells()
    fronts = mark_fronts(cells, NAMES)
    assert fronts == {"a": ["a"], "b": ["a", "b"]}  # on a, model a is faster and more accurate
    result = verdicts(NAMES, cells)
    assert result["a"] == {"meets_target": True, "within_interval": True, "on_own_front": True, "latency_ratio": 0.98,
                           "top1": 0.60}
    assert result["b"]["on_own_front"] and result["b"]["meets_target"]
    cells[3]["latency_ratio"], cells[3]["latency_ratio_low"] = 1.03, 1.01
    assert not verdicts(NAMES, cells)["b"]["meets_target"] and not verdicts(NAMES, cells)["b"]["within_interval"]


def test_config_records_every_platform_setting_and_round_trips():
    config = CompareConfig.for_names(["ort-cpu-1t", "ort-cpu-int8"], seed=3)
    assert config.names == ("ort-cpu-1t", "ort-cpu-int8")
    assert config.platforms[1]["settings"]["quant_format"] == "qdq"
    again = CompareConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config and again.platform("ort-cpu-int8").make_measurer().name == "ort-cpu-int8"


def test_recorded_platform_is_used_after_the_saved_one_changes():
    save_platform(Platform("laptop", "ort-cpu", {"intra_op_threads": 1}))
    config = CompareConfig.for_names(["laptop", "ort-cpu-2t"])
    save_platform(Platform("laptop", "ort-cpu", {"intra_op_threads": 2}), replace=True)
    assert config.platform("laptop").settings["intra_op_threads"] == 1


@pytest.mark.parametrize("names, message", [(["ort-cpu-1t"], "at least two"), (["ort-cpu-1t", "ort-cpu-1t"], "at least two"),
                                            (["ort-cpu-1t", "nope"], "not known")])
def test_bad_platform_lists_are_refused(names, message):
    with pytest.raises(ValueError, match=message):
        CompareConfig.for_names(names)


def test_bad_numbers_are_refused_naming_the_flag():
    with pytest.raises(ValueError, match="--pairs"):
        CompareConfig.for_names(["ort-cpu-1t", "ort-cpu-2t"], pairs=1)


def test_architecture_notes_and_plot(tmp_path):
    notes = describe_architecture(reference_spec("mobilenetv3-small", resolution=32, num_classes=10, in_channels=1))
    assert notes["blocks"] == 11 and notes["se_blocks"] == 9 and notes["kernels"] == {3: 3, 5: 8}
    plot_matrix(_cells(), NAMES, tmp_path / "m.png")
    assert (tmp_path / "m.png").stat().st_size > 1000


def test_matrix_file_with_a_bad_cell_is_refused(tmp_path):
    path = tmp_path / "matrix.json"
    path.write_text(json.dumps({"matrix": [{"found_for": "a", "measured_on": "b"}]}))
    with pytest.raises(ValueError, match="latency_ratio"):
        read_matrix(path)


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mobilenas", "platforms", "compare", *args], capture_output=True,
                          text=True, timeout=120)


def test_cli_refuses_missing_platforms_and_flags_with_resume(tmp_path):
    done = _cli("--out", str(tmp_path))
    assert done.returncode == 2 and "--platforms" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    done = _cli("--resume", str(tmp_path), "--platforms", "a", "b")
    assert done.returncode == 2 and "drop --platforms" in done.stderr


@pytest.mark.slow
def test_small_comparison_end_to_end(tmp_path):
    args = ["--platforms", "ort-cpu-1t", "ort-cpu-2t", "--data", "digits", "--start", "mobilenetv3-small",
            "--start-width", "1.0", "--target-like", "mobilenetv3-small", "--target-width", "0.75",
            "--pretrain-epochs", "1", "--short-steps", "2", "--long-epochs", "0", "--pairs", "6", "--threads", "1",
            "--out", str(tmp_path), "--json"]
    done = subprocess.run([sys.executable, "-m", "mobilenas", "platforms", "compare", *args], capture_output=True,
                          text=True, timeout=1500)
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout)
    document = read_matrix(summary["matrix_json"])
    cells = {(c["found_for"], c["measured_on"]) for c in document["matrix"]}
    assert cells == {(f, m) for f in ("ort-cpu-1t", "ort-cpu-2t") for m in ("ort-cpu-1t", "ort-cpu-2t")}
    assert set(document["verdicts"]) == {"ort-cpu-1t", "ort-cpu-2t"}
    run_dir = Path(summary["run_dir"])
    for name in ("matrix.csv", "matrix.png", "architectures.md"):
        assert (run_dir / name).is_file()
    # as if killed while timing the second column: the first column is kept, the second measured again
    kept = (run_dir / "matrix" / "ort-cpu-1t.json").read_text()
    (run_dir / "matrix" / "ort-cpu-2t.json").unlink()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    manifest["status"] = "interrupted"
    for stage in ("matrix", "report"):
        manifest["stages"][stage]["status"] = "interrupted"
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    again = subprocess.run([sys.executable, "-m", "mobilenas", "platforms", "compare", "--resume", str(run_dir), "--json"],
                           capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    assert (run_dir / "matrix" / "ort-cpu-1t.json").read_text() == kept
    assert (run_dir / "matrix" / "ort-cpu-2t.json").is_file()
    assert "netadapt-ort-cpu-1t] done earlier, kept" in again.stderr


@pytest.mark.parametrize("close_on", ["predicted", "measured"])
def test_the_comparison_setting_decides_what_each_netadapt_steers_by(close_on):
    config = CompareConfig.for_names(["ort-cpu-1t", "ort-cpu-2t"], close_on=close_on)
    assert netadapt_config(config, 1.0).close_on == close_on


def test_comparisons_recorded_before_the_setting_keep_steering_by_the_table():
    config = CompareConfig.for_names(["ort-cpu-1t", "ort-cpu-2t"])
    assert config.close_on == "measured"
    recorded = {k: v for k, v in config.to_dict().items() if k != "close_on"}
    assert CompareConfig.from_dict(recorded).close_on == "predicted"
    with pytest.raises(ValueError, match="close_on = 'sometimes'"):
        CompareConfig.for_names(["ort-cpu-1t", "ort-cpu-2t"], close_on="sometimes")


def test_cli_passes_the_steering_to_the_comparison(tmp_path):
    from mobilenas.cli import build_parser
    from mobilenas.cli_platforms import _open

    args = build_parser().parse_args(["platforms", "compare", "--platforms", "ort-cpu-1t", "ort-cpu-2t",
                                      "--close-on", "predicted", "--out", str(tmp_path)])
    folder, config = _open(args)
    assert config.close_on == "predicted" and folder.manifest["config"]["close_on"] == "predicted"


def test_a_start_model_already_within_a_platforms_target_is_that_platforms_model(tmp_path, monkeypatch):
    """Valid input is not refused: when the start model is predicted within a platform's target
    (a fast platform, or a slow moment while the target was measured), NetAdapt has nothing to
    cut and the trained start model is the platform's model."""
    from types import SimpleNamespace

    from pipeline import compare
    from search_spaces.encoding import format_spec

    class FixedPredictor:
        def __init__(self, *args, **kwargs) -> None:
            pass

        def predict_ms(self, spec) -> float:
            return 0.1

    monkeypatch.setattr(compare, "LazyPredictor", FixedPredictor)
    arch = format_spec(reference_spec("mobilenetv3-small", resolution=32, num_classes=10, in_channels=1))
    results = {"table-ort-cpu-1t": {"target_ms": 0.2, "folder": str(tmp_path / "none")},
               "start": {"arch": arch, "top1": 0.5, "top1_stderr": 0.01, "weights": str(tmp_path / "none.pt")}}
    said = []
    run = SimpleNamespace(config=CompareConfig.for_names(["ort-cpu-1t", "ort-cpu-2t"]), path=tmp_path,
                          result=results.__getitem__, say=said.append, stop=lambda: False)
    found = compare.stage_netadapt("ort-cpu-1t")(run)
    assert found["skipped"] and found["final_spec"] == arch and found["final_top1"] == 0.5
    assert not (tmp_path / "netadapt-ort-cpu-1t").exists() and "nothing to adapt" in said[-1]


def test_the_search_method_shares_one_supernet_and_runs_the_recipe_per_platform(tmp_path):
    """With --method search each platform gets a child ``mobilenas run`` with its own platform
    record and target, all scoring candidates with the one supernet the comparison trained."""
    from types import SimpleNamespace

    from pipeline.compare_job import stages
    from pipeline.compare_search import CHILD_STAGES, child_config

    config = CompareConfig.for_names(["ort-cpu-1t", "ort-cpu-int8"], method="search", seed=4, threads=1)
    assert [s.name for s in stages(config)] == ["supernet", "run-ort-cpu-1t", "run-ort-cpu-int8", "matrix", "report"]
    run = SimpleNamespace(config=config, result={"supernet": {"run_dir": str(tmp_path / "sn")}}.__getitem__)
    child = child_config(run, "ort-cpu-int8")
    assert child.platform == config.platform("ort-cpu-int8").record() and child.platform["settings"]["quant_format"] == "qdq"
    assert child.supernet == str(tmp_path / "sn") and child.evaluator == "supernet" and child.space == config.space
    assert (child.target_like, child.seed, child.workers, child.reward) == ("mobilenetv3-small", 4, 1, "hard")
    assert CHILD_STAGES[-1] == "final" and "references" not in CHILD_STAGES


def test_the_found_models_come_from_the_stage_that_found_them():
    from types import SimpleNamespace

    from pipeline.compare import found_results, platform_cost_s, platform_target_ms

    for method, stage in (("netadapt", "netadapt"), ("search", "run")):
        config = CompareConfig.for_names(["ort-cpu-1t", "ort-cpu-2t"], method=method)
        results = {f"{stage}-{n}": {"final_spec": n, "final_top1": 0.5, "target_ms": 0.3, "stage_s": {"final": 1.0},
                                    "elapsed_s": 2.0} for n in config.names}
        results.update({f"table-{n}": {"target_ms": 0.3, "build_s": 3.0} for n in config.names})
        run = SimpleNamespace(config=config, result=results.__getitem__)
        assert {n: r["final_spec"] for n, r in found_results(run).items()} == {"ort-cpu-1t": "ort-cpu-1t",
                                                                               "ort-cpu-2t": "ort-cpu-2t"}
        assert platform_target_ms(run, "ort-cpu-2t") == 0.3
        assert platform_cost_s(run, "ort-cpu-1t") == ({"final": 1.0} if method == "search"
                                                       else {"table": 3.0, "netadapt": 2.0})


@pytest.mark.parametrize("settings, flag", [({"method": "grid"}, "--method"), ({"budget": "huge"}, "--budget"),
                                            ({"reward": "nice"}, "--reward"),
                                            ({"method": "search", "space": "mnasnet"}, "no supernet")])
def test_bad_search_settings_are_refused_naming_the_flag(settings, flag):
    with pytest.raises(ValueError, match=flag):
        CompareConfig.for_names(["ort-cpu-1t", "ort-cpu-2t"], **settings)


def test_comparisons_recorded_before_the_search_method_are_netadapt_comparisons():
    config = CompareConfig.for_names(["ort-cpu-1t", "ort-cpu-2t"])
    recorded = {k: v for k, v in config.to_dict().items() if k not in ("method", "space", "budget", "reward")}
    assert CompareConfig.from_dict(recorded).method == "netadapt"


@pytest.mark.slow
def test_small_search_comparison_end_to_end_and_resumed(tmp_path):
    args = ["--platforms", "ort-cpu-1t", "ort-cpu-int8", "--method", "search", "--data", "digits", "--pairs", "6",
            "--threads", "1", "--out", str(tmp_path), "--json"]
    done = subprocess.run([sys.executable, "-m", "mobilenas", "platforms", "compare", *args], capture_output=True,
                          text=True, timeout=2400)
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout)
    document = read_matrix(summary["matrix_json"])
    assert {(c["found_for"], c["measured_on"]) for c in document["matrix"]} == {
        (f, m) for f in ("ort-cpu-1t", "ort-cpu-int8") for m in ("ort-cpu-1t", "ort-cpu-int8")}
    run_dir = Path(summary["run_dir"])
    manifest = json.loads((run_dir / "manifest.json").read_text())
    supernet = manifest["stages"]["supernet"]["result"]["run_dir"]
    for name in ("ort-cpu-1t", "ort-cpu-int8"):
        child = manifest["stages"][f"run-{name}"]["result"]
        child_manifest = json.loads((Path(child["run_dir"]) / "manifest.json").read_text())
        assert child_manifest["config"]["supernet"] == supernet and child_manifest["config"]["platform"]["name"] == name
        assert document["found"][name] == child["final_spec"] and set(document["cost_s"][name]) >= {"search", "final"}
    # as if killed in the second platform's final training: that stage runs again, nothing else
    child_dir = Path(manifest["stages"]["run-ort-cpu-int8"]["result"]["run_dir"])
    child_manifest = json.loads((child_dir / "manifest.json").read_text())
    child_manifest["status"] = child_manifest["stages"]["final"]["status"] = "interrupted"
    (child_dir / "manifest.json").write_text(json.dumps(child_manifest))
    for stage in ("run-ort-cpu-int8", "matrix", "report"):
        manifest["stages"][stage]["status"] = "interrupted"
    manifest["status"] = "interrupted"
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    again = subprocess.run([sys.executable, "-m", "mobilenas", "platforms", "compare", "--resume", str(run_dir), "--json"],
                           capture_output=True, text=True, timeout=1200)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "run-ort-cpu-1t] done earlier, kept" in again.stderr and "ort-cpu-int8: [5/5 final] starting" in again.stderr
    assert "ort-cpu-int8: [4/5 netadapt] done earlier, kept" in again.stderr


def test_a_finished_child_run_is_read_from_its_stages_even_after_mobilenas_run_went_on(tmp_path):
    """A child run that ``mobilenas run --resume`` carried on to its references and report holds
    that job's summary; the comparison reads what it needs from the child's stages instead."""
    from types import SimpleNamespace

    from pipeline.compare_search import child_config, stage_platform_run
    from storage.runfolder import RunFolder
    from storage.status import Status

    config = CompareConfig.for_names(["ort-cpu-1t", "ort-cpu-int8"], method="search")
    run = SimpleNamespace(config=config, path=tmp_path, result={"supernet": {"run_dir": str(tmp_path / "sn")}}.__getitem__,
                          say=lambda m: None, stop=lambda: False)
    child = child_config(run, "ort-cpu-int8")
    folder = RunFolder.create(tmp_path / "run-ort-cpu-int8", job="run", slug="child", seed=0, config=child.to_dict())
    results = {"table": {"target_ms": 0.25, "folder": "t"}, "supernet": {"run_dir": "sn"}, "search": {"best_spec": "b"},
               "netadapt": {"final_spec": "n", "latency_rounds": [{"round": 1, "ratio": 0.97}]},
               "final": {"arch": "f", "top1": 0.6, "top1_stderr": 0.01}, "references": {"models": []}}
    folder.manifest["stages"] = {k: {"status": "finished", "result": v, "elapsed_s": 1.0} for k, v in results.items()}
    folder.set_status(Status.FINISHED, results={"final": "the whole run's summary"})
    found = stage_platform_run("ort-cpu-int8")(run)
    assert (found["final_spec"], found["final_top1"], found["target_ms"], found["search_best"]) == ("f", 0.6, 0.25, "b")
    assert found["netadapt_rounds"][0]["ratio"] == 0.97 and found["stage_s"]["final"] == 1.0


def test_a_column_times_each_model_alone_spread_over_a_deciding_check(monkeypatch):
    from types import SimpleNamespace

    from latency.paired import WHOLE_MODEL_SECONDS, PairedRatio
    from pipeline import platform_matrix

    seen, calls = {}, []

    def fake_measure(measurer, specs, reference, **kwargs):
        seen.update(kwargs, n=len(specs))
        calls.append(list(specs))
        return [PairedRatio(0.9 + len(calls) / 10 - 0.1, 0.85, 1.05, 2.0, 24) for _ in specs]

    monkeypatch.setattr(platform_matrix, "measure_specs", fake_measure)
    monkeypatch.setattr(platform_matrix, "found_specs", lambda run: {"a": "spec a", "b": "spec b"})
    monkeypatch.setattr(platform_matrix, "adapted", lambda *args: "like")
    monkeypatch.setattr(platform_matrix, "dataset", lambda run: None)
    config = SimpleNamespace(target_like="mobilenetv3-small", target_width=1.0, pairs=24, target_scale=2.0,
                             platform=lambda name: SimpleNamespace(make_measurer=lambda: "measurer"))
    cells = platform_matrix.measure_column(SimpleNamespace(config=config, say=lambda m: None), "a")
    assert seen["min_seconds"] == WHOLE_MODEL_SECONDS and seen["passes"] == 2
    assert calls == [["spec a"], ["spec b"]]  # one model a session, with the reference
    assert [c["found_for"] for c in cells] == ["a", "b"] and cells[1]["latency_ratio"] == pytest.approx(0.5)
