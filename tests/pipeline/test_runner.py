"""The pipeline's bookkeeping: settings checked first, stages recorded, finished stages never
redone, a failing stage named with the resume command, reports self-contained."""
import json

import pandas as pd
import pytest

from mobilenas.cli import main
from pipeline.config import PipelineConfig
from pipeline.report_format import Section, write_report
from pipeline.runner import Pipeline, Stage, StageFailed, StageStopped
from pipeline.stages import RECIPE, STAGES
from storage.runfolder import RunFolder
from storage.status import Status


@pytest.mark.parametrize("changes, message", [
    ({}, "exactly one of --target-ms and --target-like"),
    ({"target_ms": 1.0, "target_like": "mobilenetv3-small"}, "exactly one"),
    ({"target_ms": -1.0}, "--target-ms = -1.0 is not allowed"),
    ({"target_ms": float("nan")}, "--target-ms = nan is not allowed"),
    ({"target_ms": 1.0, "budget": "huge"}, "--budget 'huge' is not known"),
    ({"target_ms": 1.0, "workers": 0}, "--workers = 0 is not allowed"),
    ({"target_ms": 1.0, "evaluator": "oracle"}, "--evaluator 'oracle' is not known"),
    ({"target_ms": 1.0, "evaluator": "supernet"}, "'mnasnet-v3small' has no supernet; its MBConv part is mnasnet-v3small-mbconv"),
    ({"target_ms": 1.0, "supernet": "runs/x"}, "--supernet applies to --evaluator supernet only"),
    ({"target_ms": 1.0, "reward": "best"}, "--reward 'best' is not known"),
])
def test_config_rejects_bad_settings(changes, message):
    with pytest.raises(ValueError, match=message):
        PipelineConfig(data="digits", **changes)


def test_config_round_trips_and_rejects_unknown_keys():
    config = PipelineConfig(data="digits", target_ms=0.5, seed=3)
    assert PipelineConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(ValueError, match="unknown keys"):
        PipelineConfig.from_dict({**config.to_dict(), "epochs": 3})


def fake_pipeline(folder, config, calls, fail_at=None, stop_at=None) -> Pipeline:
    """A runner handed stages that record their call (and fail or stop where asked)."""
    def stage(run, name):
        calls.append(name)
        if name == fail_at:
            raise RuntimeError("disk on fire")
        if name == stop_at:
            raise StageStopped()
        return {"stage": name}

    stages = [Stage(name, lambda run, name=name: stage(run, name)) for name in STAGES]
    return Pipeline(folder, config, stages, lambda run: {"done": [n for n in STAGES if run.result(n)]})


def test_the_recipe_runs_every_stage_once_in_order():
    assert STAGES == ("table", "supernet", "search", "netadapt", "final", "references", "measure", "export", "report")
    assert len({stage.run for stage in RECIPE}) == len(RECIPE)


def test_finished_stages_are_kept_and_a_failure_names_stage_and_resume(tmp_path):
    config = PipelineConfig(data="digits", target_ms=1.0)
    folder = RunFolder.create(tmp_path, job="run", slug="t", seed=0, config=config.to_dict())
    calls = []
    with pytest.raises(StageFailed, match=r"stage 'final' failed: disk on fire .*mobilenas run --resume"):
        fake_pipeline(folder, config, calls, fail_at="final").run()
    assert calls == list(STAGES[:STAGES.index("final") + 1])
    reopened = RunFolder.open(folder.path, job="run")
    assert reopened.manifest["stages"]["final"]["status"] == "failed"
    assert reopened.manifest["stages"]["search"] == {"status": "finished", "result": {"stage": "search"},
                                                      "elapsed_s": reopened.manifest["stages"]["search"]["elapsed_s"]}
    calls.clear()
    summary = fake_pipeline(reopened, config, calls).run()
    assert calls == list(STAGES[STAGES.index("final"):])
    assert summary["done"] == list(STAGES)
    assert RunFolder.open(folder.path, job="run").status is Status.FINISHED


def test_a_stopped_stage_is_marked_interrupted(tmp_path):
    config = PipelineConfig(data="digits", target_ms=1.0)
    folder = RunFolder.create(tmp_path, job="run", slug="t", seed=0, config=config.to_dict())
    with pytest.raises(StageStopped):
        fake_pipeline(folder, config, [], stop_at="netadapt").run()
    assert folder.manifest["stages"]["netadapt"]["status"] == "interrupted"


def test_result_of_an_unfinished_stage_is_refused(tmp_path):
    config = PipelineConfig(data="digits", target_ms=1.0)
    folder = RunFolder.create(tmp_path, job="run", slug="t", seed=0, config=config.to_dict())
    with pytest.raises(StageFailed, match="stage 'search' has not finished"):
        fake_pipeline(folder, config, []).result("search")


def test_report_html_is_self_contained(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([1, 2], [3, 4])
    fig.savefig(tmp_path / "plot.png")
    plt.close(fig)
    sections = [Section("Result", ["top-1 <b>90%</b>"], [pd.DataFrame({"model": ["a|b"], "latency_ms": [0.1234567]})],
                        [tmp_path / "plot.png"], code="r32_i1_n10|...")]
    md, page = write_report(tmp_path, "Report", sections)
    text = page.read_text()
    assert "data:image/png;base64," in text and "http" not in text.replace("<!DOCTYPE html>", "")
    assert "&lt;b&gt;90%&lt;/b&gt;" in text and "0.1235" in text
    markdown = md.read_text()
    assert "![plot](plot.png)" in markdown and "a\\|b" in markdown


def test_cli_refuses_options_with_resume_and_bad_input(tmp_path, capsys):
    config = PipelineConfig(data="digits", target_ms=1.0)
    folder = RunFolder.create(tmp_path, job="run", slug="t", seed=0, config=config.to_dict())
    assert main(["run", "--resume", str(folder.path), "--budget", "medium"]) == 2
    assert "drop --budget" in capsys.readouterr().err
    assert main(["run", "--target-ms", "1", "--strategy", "magic", "--out", str(tmp_path)]) == 2
    assert "--strategy 'magic' is not known" in capsys.readouterr().err
    assert main(["run", "--target-like", "no-such-spec", "--out", str(tmp_path)]) == 2
    assert "unknown spec 'no-such-spec'" in capsys.readouterr().err
    assert main(["run", "--out", str(tmp_path)]) == 2
    assert "exactly one of --target-ms and --target-like" in capsys.readouterr().err
    assert main(["run", "--target-ms", "1", "--data", f"npz:{tmp_path / 'none.npz'}", "--out", str(tmp_path)]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["run", "--target-ms", "1", "--supernet", str(tmp_path / "none"), "--out", str(tmp_path)]) == 2
    assert "is not a run folder" in capsys.readouterr().err
    assert main(["run", "--target-ms", "1", "--evaluator", "proxy", "--supernet", "x", "--out", str(tmp_path)]) == 2
    assert "--supernet applies to --evaluator supernet only" in capsys.readouterr().err
    assert main(["run", "--target-ms", "1", "--evaluator", "supernet", "--space", "mnasnet", "--out", str(tmp_path)]) == 2
    assert "its MBConv part is mnasnet-mbconv" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == [folder.path.name]  # nothing half-written


TINY = dict(search_trials=2, search_epochs=1, search_target_factor=1.25, pretrain_epochs=1, short_steps=2,
            netadapt_delta=0.3, long_epochs=1, final_epochs=1, references=(("mobilenetv3-small", 0.5),),
            supernet_epochs=1, supernet_trials=3)


@pytest.mark.slow
@pytest.mark.ray
def test_pipeline_end_to_end_on_digits(tmp_path, capsys, monkeypatch):
    """The whole recipe at a tiny budget: every stage finishes, files exist, --json has the keys,
    and a resume of the finished run is refused."""
    from pipeline import config as pipeline_config

    monkeypatch.setitem(pipeline_config.BUDGETS, "small", pipeline_config.PipelineBudget(**TINY))
    code = main(["run", "--data", "digits", "--target-like", "mobilenetv3-small", "--target-width", "0.75",
                 "--out", str(tmp_path), "--json", "--workers", "1", "--threads", "1"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    summary = json.loads(captured.out.strip().splitlines()[-1])
    for key in ("run_dir", "final_spec", "top1", "latency_ms", "params", "madds", "report"):
        assert key in summary
    run = RunFolder.open(summary["run_dir"], job="run")
    assert run.status is Status.FINISHED
    assert all(run.manifest["stages"][s]["status"] == "finished" for s in STAGES)
    assert {r["name"] for r in summary["references"]} == {"mobilenetv3-small-x0.5", "mobilenetv3-small-x0.75"}
    for name in ("export/final.json", "export/final.md", "export/final.onnx", "export/final_timm.json",
                 "export/final.pt", "report.md", "report.html", "accuracy_latency.png"):
        assert (run.path / name).is_file(), name
    assert main(["run", "--resume", summary["run_dir"]]) == 2
    assert "already finished" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.ray
def test_pipeline_with_the_supernet_evaluator_starts_netadapt_and_the_final_training_from_its_weights(
        tmp_path, capsys, monkeypatch):
    """--evaluator supernet: a supernet trained in the run scores the search's candidates; the
    found sub-network's inherited weights start NetAdapt (no pre-training) and its result starts
    the final training; a resume of the finished run is refused."""
    from pathlib import Path

    import torch

    from pipeline import config as pipeline_config
    from pipeline.supernet_stage import START_SPEC, START_WEIGHTS

    monkeypatch.setitem(pipeline_config.BUDGETS, "small", pipeline_config.PipelineBudget(**TINY))
    code = main(["run", "--data", "digits", "--target-like", "mobilenetv3-small", "--target-scale", "2.5",
                 "--evaluator", "supernet", "--out", str(tmp_path), "--json", "--workers", "1", "--threads", "1"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    run = RunFolder.open(json.loads(captured.out.strip().splitlines()[-1])["run_dir"], job="run")
    assert run.manifest["config"]["space"] == "mnasnet-v3small-mbconv"
    assert all(run.manifest["stages"][s]["status"] == "finished" for s in STAGES)
    assert run.manifest["stages"]["supernet"]["result"]["trained_here"]
    assert main(["run", "--resume", str(run.path)]) == 2
    (search,) = run.path.glob("search/*/manifest.json")
    search_config = json.loads(search.read_text())["config"]
    assert search_config["evaluator"] == "supernet" and search_config["trials"] == 3
    assert search_config["reward"] == "hard" and search_config["w"] is None  # MnasNet's hard constraint
    assert search_config["supernet"] == str(next(run.path.glob("supernet/*")))
    start = torch.load(run.path / START_WEIGHTS, weights_only=True)
    (final,) = run.path.glob("final/*/manifest.json")
    init = json.loads(final.read_text())["init"]
    netadapt = sorted(run.path.glob("netadapt*/*/manifest.json"))
    if not netadapt:  # the search's best was already within the target: nothing to cut
        assert run.manifest["stages"]["netadapt"]["result"]["skipped"] and init["source"] == str(run.path / START_WEIGHTS)
        return
    setup = json.loads(netadapt[0].read_text())["config"]
    assert setup["spec_name"] == "supernet-subnet" and setup["weights"] == str(run.path / START_WEIGHTS)
    assert (run.path / START_SPEC).read_text().strip() == setup["spec"]  # the weights are the start's
    assert not list(run.path.glob("netadapt/*/pretrain"))  # inherited weights: nothing trained first
    netadapt_start = torch.load(netadapt[0].parent / "start.pt", weights_only=True)
    assert all(torch.equal(netadapt_start[k], v) for k, v in start.items())
    last_round = run.manifest["stages"]["netadapt"]["result"]["run_dir"]
    assert init["source"] == str(Path(last_round) / "final.pt")


@pytest.mark.slow
@pytest.mark.ray
def test_ctrl_c_in_the_search_stops_the_run_and_resume_finishes_it(tmp_path, capsys, monkeypatch):
    """A real SIGINT once the search has logged a trial: the run reads interrupted with the
    search stage interrupted and its logged trials kept; --resume finishes with no trial twice."""
    import os
    import signal
    import threading
    import time

    from pipeline import config as pipeline_config

    monkeypatch.setitem(pipeline_config.BUDGETS, "small",
                        pipeline_config.PipelineBudget(**{**TINY, "search_trials": 4}))

    def interrupt_after_first_trial() -> None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if any(len(p.read_text().splitlines()) >= 2 for p in tmp_path.glob("*/search/*/trials.csv")):
                os.kill(os.getpid(), signal.SIGINT)
                return
            time.sleep(0.2)

    threading.Thread(target=interrupt_after_first_trial, daemon=True).start()
    argv = ["run", "--data", "digits", "--target-like", "mobilenetv3-small", "--out", str(tmp_path), "--json",
            "--workers", "1", "--threads", "1"]
    assert main(argv) == 130
    assert "stopping at the next safe point" in capsys.readouterr().err
    (run_dir,) = [p for p in tmp_path.iterdir() if (p / "manifest.json").is_file()]
    run = RunFolder.open(run_dir, job="run")
    assert run.status is Status.INTERRUPTED
    assert run.manifest["stages"]["search"]["status"] == "interrupted"
    (trials,) = run_dir.glob("search/*/trials.csv")
    kept = pd.read_csv(trials)
    assert 1 <= len(kept) < 4
    assert main(["run", "--resume", str(run_dir), "--json"]) == 0
    final = pd.read_csv(trials)
    assert len(final) == 4 and final["spec"].is_unique
    assert final["spec"].head(len(kept)).tolist() == kept["spec"].tolist()
    assert RunFolder.open(run_dir, job="run").status is Status.FINISHED


def test_a_model_trained_by_an_earlier_version_is_kept_or_refused_in_one_line(tmp_path):
    """Earlier versions trained final and reference models straight into the stage's folder."""
    from pipeline.stages import _earlier_training

    old = tmp_path / "final"
    old.mkdir()
    assert _earlier_training(old) is None
    (old / "checkpoint.pt").write_bytes(b"partial")
    with pytest.raises(StageFailed, match="unfinished training of an earlier mobilenas version") as info:
        _earlier_training(old)
    assert "\n" not in str(info.value)
    (old / "result.json").write_text(json.dumps({"arch": "a", "top1": 0.5}))
    assert _earlier_training(old) == {"arch": "a", "top1": 0.5}
