"""The pipeline report: rendered through the template with everything from the run escaped,
the status the run ends with, the latency checks as sentences and tables, the manifest folded."""
import html
import re

from pipeline.config import PipelineConfig
from pipeline.report import write_pipeline_report
from pipeline.runner import Pipeline, Stage
from pipeline.stages import STAGES
from search_spaces.encoding import format_spec
from search_spaces.reference import reference_spec
from storage.runfolder import RunFolder
from storage.status import Status

HOSTILE = "<script>alert('x')</script>"
DRIFT = {"baseline_ms": 0.12, "measured_ms": 0.15, "ratio": 1.25, "tolerance": 0.25, "action": "ok",
         "differences": [], "signature_error": 0.031, "signature": {"a": 1.0}, "speed_factor": 1.25}
DOCTOR = {"swing": 1.41, "paired_spread": 1.02, "paired_halfwidth": 0.012, "verdict": "noisy",
          "advice": ["Close other jobs."], "system": {"load_1min": 2.5, "cpus": 2}, "seconds": 3.2}
VALIDATION = {"n": 50, "within_5pct": 0.5, "within_10pct": 0.8, "mean_abs_err_pct": 6.1, "p90_abs_err_pct": 12.0,
              "spearman": 0.97}


def finished_results(arch: str) -> dict:
    model = {"top1": 0.9, "top1_stderr": 0.01, "arch": arch}
    measured = {"latency_ms": 0.1, "latency_min_ms": 0.09, "latency_max_ms": 0.11}
    return {
        "table": {"message": "built a table", "target_ms": 0.12, "target_like": HOSTILE,
                  "target_like_measured": {"ratio": 1.0, "low": 0.98, "high": 1.02, "latency_ms": 0.12},
                  "target_like_predicted_ms": 0.121,
                  "record": {"entries": 10, "drift": DRIFT, "doctor": DOCTOR, "validation": VALIDATION}},
        "supernet": {"skipped": True}, "search": {}, "netadapt": {"skipped": True, "predicted_latency_ms": 0.1},
        "final": model, "references": {"models": [{"name": HOSTILE, **model}]},
        "measure": {"models": [{"name": "final", **measured}, {"name": HOSTILE, **measured}]}, "export": {}}


def report_run(tmp_path, **settings) -> Pipeline:
    """A run whose stages before the report have finished, as the report stage sees it."""
    config = PipelineConfig(data="digits", target_ms=1.0, **settings)
    folder = RunFolder.create(tmp_path, job="run", slug="t", seed=0, config=config.to_dict())
    folder.set_status(Status.RUNNING)
    run = Pipeline(folder, config, [Stage(name, lambda run: {}) for name in STAGES], lambda run: {})
    arch = format_spec(reference_spec("mobilenetv3-small", resolution=32, num_classes=10, in_channels=1))
    for name, result in finished_results(arch).items():
        run.records()[name] = {"status": "finished", "result": result}
    run.records()["report"] = {"status": "running"}
    return run


def test_report_escapes_states_the_end_status_and_folds_the_manifest(tmp_path):
    md, page = write_pipeline_report(report_run(tmp_path))
    text = page.read_text()
    assert HOSTILE not in text and "&lt;script&gt;" in text
    assert re.search(r'Run status: <span class="status status-finished">finished</span>', text)
    head, folded = html.unescape(text).split("<details>", 1)
    assert '{"' not in head and '{"' not in folded.split("</details>", 1)[1]
    assert '"status": "finished"' in folded and '"running"' not in folded
    assert "1.25x the build&#39;s speed" in text and "signature within 3.1%" in text and "noisy" in text
    assert "80% within 10%" in text and "Close other jobs." in text and "<td>3.1%</td>" in text
    markdown = md.read_text()
    assert "Run status: **finished**" in markdown and "1.25x the build's speed" in markdown


def test_report_reads_an_older_drift_record_as_a_sentence(tmp_path):
    run = report_run(tmp_path)
    record = run.records()["table"]["result"]["record"]
    record["drift"] = {k: DRIFT[k] for k in ("baseline_ms", "measured_ms", "ratio", "tolerance", "action")}
    record["doctor"], record["validation"] = None, None
    text = html.unescape(write_pipeline_report(run)[1].read_text()).split("<details>", 1)[0]
    assert "took 0.15 ms against 0.12 ms at the build (1.25x, tolerance 25%); action: ok" in text
    assert "has not been validated" in text and '{"' not in text


def test_the_report_says_when_the_final_model_started_from_supernet_weights(tmp_path):
    proxy = html.unescape(write_pipeline_report(report_run(tmp_path / "p"))[1].read_text())
    supernet = html.unescape(write_pipeline_report(report_run(
        tmp_path / "s", evaluator="supernet", space="mnasnet-small-mbconv"))[1].read_text())
    sentence = "training started from them (through NetAdapt), not from scratch"
    assert sentence in supernet.split("<details>", 1)[0] and sentence not in proxy


def test_the_report_shows_the_measured_starts_and_the_one_chosen(tmp_path):
    import json

    from pipeline.netadapt_rounds import CHOICE_FILE, round_folder

    run = report_run(tmp_path)
    row = {"spec": "s", "top1": 0.2, "top1_stderr": 0.01, "predicted_ms": 0.15, "floor_share": 0.4, "ratio": 1.5,
           "ratio_low": 1.49, "ratio_high": 1.51}
    candidates = [{**row, "measured_ms": 0.24, "reward": 0.125}, {**row, "measured_ms": 0.18, "reward": 0.1667}]
    round_folder(run, 0).mkdir()
    (round_folder(run, 0) / CHOICE_FILE).write_text(json.dumps({"spec": "s", "rank": 2, "candidates": candidates}))
    markdown = write_pipeline_report(run)[0].read_text()
    assert "## NetAdapt's start" in markdown and "The search's best 2 trials by reward" in markdown
    # measured 0.24 and 0.18 ms against a 0.12 ms target; the second chosen
    assert "| 1 | 0.2 | 1.25 | 2 |" in markdown and "| 2 | 0.2 | 1.25 | 1.5 |" in markdown and "rank 2." in markdown


def test_the_report_shows_how_a_start_under_the_budget_was_widened(tmp_path):
    import json

    from pipeline.netadapt_rounds import CHOICE_FILE, round_folder

    run = report_run(tmp_path)
    row = {"spec": "s", "top1": 0.2, "top1_stderr": 0.01, "predicted_ms": 0.1, "floor_share": 0.4, "ratio": 0.8,
           "ratio_low": 0.79, "ratio_high": 0.81, "measured_ms": 0.096, "reward": 0.2}
    growth = [{"spec": "w", "multiplier": 1.15, "predicted_ms": 0.12, "estimated_ratio": 1.04, "ratio": 0.93,
               "ratio_low": 0.92, "ratio_high": 0.94},
              {"spec": "w2", "deeper_by": 1, "multiplier": 1.25, "predicted_ms": 0.13, "estimated_ratio": 1.05, "ratio": 1.02,
               "ratio_low": 1.01, "ratio_high": 1.03}]
    round_folder(run, 0).mkdir()
    (round_folder(run, 0) / CHOICE_FILE).write_text(json.dumps({"spec": "w2", "searched_spec": "s", "rank": 1,
                                                                "candidates": [row], "growth": growth}))
    markdown = write_pipeline_report(run)[0].read_text()
    assert "so it was grown: its blocks widened by one multiplier" in markdown
    assert "| 0 | 1.15 | 1.04 | 0.93 |" in markdown and "| 1 | 1.25 | 1.05 | 1.02 |" in markdown
