"""The report of a pipeline run (``report.md`` + self-contained ``report.html``): the final
architecture as the paper's table, the accuracy-latency picture (search trials and Pareto
front; final and reference models trained alike), the NetAdapt trajectory, the latency
table's validation and drift probe, and the manifest."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.netadapt_rounds import round_folder
from pipeline.report_format import Section, write_report
from pipeline.runner import Pipeline
from search_spaces.counting import spec_cost
from search_spaces.encoding import parse_spec
from search_spaces.paper_table import COLUMNS, table_rows
from storage.runfolder import child_run

FIGURE = "accuracy_latency.png"


def models_frame(run: Pipeline) -> pd.DataFrame:
    """Final and reference models: test top-1 (+ stderr), measured latency (+ spread), cost."""
    measured = {m["name"]: m for m in run.result("measure")["models"]}
    trained = [{"name": "final", **run.result("final")}, *run.result("references")["models"]]
    rows = []
    for model in trained:
        cost = spec_cost(parse_spec(model["arch"]))
        m = measured[model["name"]]
        rows.append({"model": model["name"], "top1": model["top1"], "top1_stderr": model["top1_stderr"],
                     "latency_ms": m["latency_ms"], "latency_min_ms": m["latency_min_ms"],
                     "latency_max_ms": m["latency_max_ms"], "params": cost.params, "madds_m": cost.madds / 1e6})
    return pd.DataFrame(rows)


def search_trials(run: Pipeline) -> pd.DataFrame | None:
    search = child_run(run.path / "search", "search")
    path = None if search is None else search.file("trials.csv")
    if path is None or not path.is_file():
        return None
    return pd.read_csv(path)


def plot_accuracy_latency(run: Pipeline, models: pd.DataFrame, path: Path) -> Path:
    """Left: search trials (proxy validation top-1 vs predicted latency) and their Pareto front.
    Right: the trained models (test top-1 vs measured latency). Target latency dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nas.pareto import pareto_front

    target = run.result("table")["target_ms"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    trials = search_trials(run)
    if trials is not None and len(trials):
        left.scatter(trials["latency_ms"], trials["top1"], s=14, alpha=0.5, label="trials")
        front = pareto_front(trials)
        left.plot(front["latency_ms"], front["top1"], "-o", ms=4, color="C3", label="Pareto front")
    left.axvline(target * run.config.stage_budget.search_target_factor, ls=":", color="gray", label="search target")
    left.set(title="global search (proxy)", xlabel="predicted latency (ms)", ylabel="validation top-1")
    left.legend(fontsize=8)
    for row in models.itertuples():
        right.errorbar(row.latency_ms, row.top1, yerr=row.top1_stderr, fmt="*" if row.model == "final" else "o",
                       ms=12 if row.model == "final" else 6, label=row.model)
    right.axvline(target, ls="--", color="gray", label="target")
    right.set(title="trained with the same recipe", xlabel="measured latency (ms, ORT CPU, batch 1)",
              ylabel="test top-1")
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _netadapt_section(run: Pipeline) -> Section:
    result = run.result("netadapt")
    section = Section("NetAdapt trajectory")
    rounds = result.get("latency_rounds", [])
    if rounds:
        section.paragraphs.append("First table: each NetAdapt round's final model measured end to end, paired "
                                  "run by run with the budget's model: the ratio to the budget with its 95% "
                                  "interval (a further round starts from it only while the whole interval lies "
                                  "above 1). Second table: the last round's iterations.")
        frame = pd.DataFrame(rounds)
        columns = [c for c in ("round", "target_ms", "predicted_ms", "final_ms", "budget_ms", "ratio", "ratio_low",
                               "ratio_high") if c in frame.columns]
        section.tables.append(frame[columns])
    if result.get("skipped"):
        section.paragraphs.append(f"The last round had nothing to adapt: its start model was already at "
                                  f"{result['predicted_latency_ms']:.4f} ms (predicted), at or below the target.")
        return section
    last = child_run(round_folder(run, max(len(rounds) - 1, 0)), "netadapt")
    section.paragraphs.append(f"Last round: {result['iterations']} iterations, predicted {result['start_predicted_ms']:.4f}"
                              f" -> {result['predicted_latency_ms']:.4f} ms (target {result['target_ms']:.4f} ms); "
                              f"selection by {result['select']}. Run folder: {last.path}.")
    history = last.file("history.csv")
    if history.is_file():
        frame = pd.read_csv(history)
        chosen = frame[frame["chosen"].astype(str).str.lower() == "true"]
        keep = [c for c in ("iteration", "label", "predicted_ms", "measured_ms", "val_top1", "score")
                if c in chosen.columns]
        section.tables.append(chosen[keep].reset_index(drop=True))
    section.figures.append(last.file("trajectory.png"))
    return section


def _latency_section(run: Pipeline) -> Section:
    table = run.result("table")
    record = table["record"]
    section = Section("Latency table")
    section.paragraphs += [table["message"], f"{record['entries']} layer entries; {_drift_sentence(record.get('drift'))}."]
    doctor = record.get("doctor")
    if doctor:
        section.paragraphs.append(
            f"Timing on this machine ({doctor['verdict']}): one model's window medians swung {doctor['swing']:.2f}x "
            f"(max/min) while repeated paired ratios stayed within {doctor['paired_spread']:.3f}x; every latency "
            "decision of this run rests on paired ratios.")
    validation = record.get("validation")
    section.paragraphs.append("Validation: " + (json.dumps(validation) if validation else
                                                "this table has not been validated (mobilenas latency validate)."))
    if table.get("target_like"):
        measured = table["target_like_measured"]
        if "ratio" in measured and "low" in measured:
            how = (f"paired with the table's reference: {measured['ratio']:.3f}x [{measured['low']:.3f}, "
                   f"{measured['high']:.3f}], {measured['latency_ms']:.4f} ms at that moment's speed")
        else:
            how = json.dumps(measured)
        section.paragraphs.append(f"Target {table['target_ms']:.4f} ms (table units) from {table['target_like']}'s "
                                  f"measured latency ({how}); the table predicts {table['target_like_predicted_ms']:.4f} "
                                  "ms for it.")
    return section


def _drift_sentence(drift: dict | None) -> str:
    """The table check as a sentence (older runs recorded other fields: shown as they are)."""
    if not drift or "speed_factor" not in drift:
        return f"drift probe: {json.dumps(drift)}"
    signature = ("no signature recorded" if drift.get("signature_error") is None
                 else f"signature within {drift['signature_error']:.1%} of the build's")
    return (f"this machine ran at {drift['speed_factor']:.2f}x the build's speed when the table was opened; "
            f"{signature}; action: {drift['action']}")


def write_pipeline_report(run: Pipeline) -> tuple[Path, Path]:
    models = models_frame(run)
    final = models.iloc[0]
    spec = parse_spec(run.result("final")["arch"])
    target = run.result("table")["target_ms"]
    head = Section("Result", [
        f"Data {run.config.data}, budget {run.config.budget}, seed {run.config.seed}. Final model: test top-1 "
        f"{100 * final.top1:.2f}% (+/- {100 * final.top1_stderr:.2f}, binomial standard error), measured latency "
        f"{final.latency_ms:.4f} ms against a target of {target:.4f} ms, {final.params:,} parameters, "
        f"{final.madds_m:.2f} M multiply-adds. Every model below was trained with the same recipe and budget and "
        "measured in the same interleaved session."], tables=[models])
    arch = Section("Final architecture (the paper's table)",
                   tables=[pd.DataFrame(table_rows(spec, str(spec.num_classes)), columns=list(COLUMNS))],
                   code=run.result("final")["arch"])
    picture = Section("Accuracy and latency", figures=[plot_accuracy_latency(run, models, run.path / FIGURE)])
    manifest = Section("Manifest", code=json.dumps({k: v for k, v in run.folder.manifest.items() if k != "stages"},
                                                   indent=2, default=str))
    sections = [head, arch, picture, _netadapt_section(run), _latency_section(run), manifest]
    return write_report(run.path, "MobileNAS run report", sections)
