"""The report of a pipeline run (``report.md`` + self-contained ``report.html``): the final
architecture as the paper's table, the accuracy-latency picture (search trials and Pareto
front; final and reference models trained alike), the NetAdapt trajectory, the latency
table's validation and drift probe, and the manifest."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.netadapt_grow import GROW_AIM, GROW_BELOW
from pipeline.netadapt_rounds import AIM, CHOICE_FILE, LOOP_GOAL, round_folder
from pipeline.report_format import Section, write_report
from pipeline.runner import Pipeline
from search_spaces.counting import spec_cost
from search_spaces.encoding import parse_spec
from search_spaces.paper_table import COLUMNS, table_rows
from storage.runfolder import child_run
from storage.status import Status

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
                                  "block by block with the budget's model: the ratio to the budget with its 95% "
                                  "interval (pairs are added until it is +/- 1.5% or the time allowed is spent, over 10 s at least; "
                                  f"each round aims at {AIM} x the budget, its loop stopping at the "
                                  f"first model its own measurement reads at or under {LOOP_GOAL} x, and a further round "
                                  "starts from its model when the ratio is above 1). Second table: the last round's "
                                  "iterations.")
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


def _start_section(run: Pipeline) -> list[Section]:
    """The searched models measured as NetAdapt's start, when the run chose among them."""
    path = round_folder(run, 0) / CHOICE_FILE
    if not path.is_file():
        return []
    section = Section("NetAdapt's start")
    choice = json.loads(path.read_text())
    frame = pd.DataFrame(choice["candidates"])
    target = float(run.result("table")["target_ms"])
    frame.insert(0, "rank", range(1, len(frame) + 1))
    frame["priced_x"], frame["measured_x"] = frame["predicted_ms"] / target, frame["measured_ms"] / target
    frame["chosen"] = frame["rank"] == choice["rank"]
    section.paragraphs.append(f"The search's best {len(frame)} trials by reward, each measured end to "
                              "end paired with the budget's model and scored again with the search's reward at that "
                              "latency (x: multiples of the budget, priced by the table and measured; floor_share: every "
                              "width at NetAdapt's floor, as a share of the budget). The best by that reward whose floor "
                              f"leaves headroom starts NetAdapt: rank {choice['rank']}.")
    section.tables.append(frame[["rank", "top1", "priced_x", "measured_x", "ratio_low", "ratio_high", "reward",
                                 "floor_share", "chosen"]].round(4))
    growth = choice.get("growth") or []  # absent before widening
    if growth:
        section.paragraphs.append(
            f"The chosen model measured under {GROW_BELOW:.2f}x the budget, and NetAdapt only narrows, so it was grown: "
            "its blocks widened by one multiplier, every stage a block deeper first where no width reached, estimated at "
            f"{GROW_AIM:.2f}x the budget from its measurement and the table, then measured (ratio: measured multiple of "
            "the budget); NetAdapt starts from the last.")
        frame = pd.DataFrame(growth)
        frame["deeper_by"] = frame.get("deeper_by", pd.Series(0, index=frame.index)).fillna(0).astype(int)  # before depth
        section.tables.append(frame[["deeper_by", "multiplier", "estimated_ratio", "ratio", "ratio_low",
                                     "ratio_high"]].round(4))
    return [section]


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
            "decision of this run rests on paired ratios." + "".join(f" {a}" for a in doctor.get("advice") or ()))
    checks = _check_rows(record.get("drift"), doctor)
    if checks:
        section.tables.append(pd.DataFrame(checks, columns=["check", "value"]))
    section.paragraphs.append(_validation_sentence(record.get("validation")))
    if table.get("target_like"):
        section.paragraphs.append(f"Target {table['target_ms']:.4f} ms (table units) from {table['target_like']}'s "
                                  f"measured latency ({_measured_phrase(table['target_like_measured'])}); the table "
                                  f"predicts {table['target_like_predicted_ms']:.4f} ms for it.")
    return section


def _plain(figures: dict[str, Any] | None) -> str:
    """A record of an unknown shape as ``key value`` pairs (never as raw JSON)."""
    return ", ".join(f"{k} {_value(v)}" for k, v in (figures or {}).items()) or "nothing recorded"


def _value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return "; ".join(map(str, value)) or "none"
    return "none" if value is None else str(value)


def _drift_sentence(drift: dict | None) -> str:
    """The table check as a sentence (older runs recorded the reference's times without the
    probe signature)."""
    if not drift:
        return "no hardware check recorded"
    differs = (f"; differs from the build's machine in {', '.join(drift['differences'])}"
               if drift.get("differences") else "")
    if "speed_factor" in drift:
        signature = ("no signature recorded" if drift.get("signature_error") is None
                     else f"signature within {drift['signature_error']:.1%} of the build's")
        return (f"this machine ran at {drift['speed_factor']:.2f}x the build's speed when the table was opened; "
                f"{signature}; action: {drift['action']}{differs}")
    if {"ratio", "baseline_ms", "measured_ms"} <= drift.keys():
        return (f"the reference model took {drift['measured_ms']:.4g} ms against {drift['baseline_ms']:.4g} ms at the "
                f"build ({drift['ratio']:.2f}x, tolerance {drift.get('tolerance', float('nan')):.0%}); action: "
                f"{drift.get('action', 'none recorded')}{differs}")
    return f"hardware check: {_plain(drift)}"


def _check_rows(drift: dict | None, doctor: dict | None) -> list[tuple[str, str]]:
    """The hardware check's and the timing check's figures as (check, value) rows."""
    drift, doctor = drift or {}, doctor or {}
    rows = [("speed vs the build (x)", drift.get("speed_factor", drift.get("ratio"))),
            ("reference now / at build (ms)", f"{_value(drift.get('measured_ms'))} / {_value(drift.get('baseline_ms'))}"
             if "measured_ms" in drift else None),
            ("signature error", None if drift.get("signature_error") is None else f"{drift['signature_error']:.1%}"),
            ("tolerance", None if drift.get("tolerance") is None else f"{drift['tolerance']:.0%}"),
            ("action", drift.get("action")),
            ("timing verdict", doctor.get("verdict")),
            ("window-median swing (max/min)", doctor.get("swing")),
            ("paired-ratio spread (max/min)", doctor.get("paired_spread")),
            ("paired 95% half-width", None if doctor.get("paired_halfwidth") is None
             else f"{doctor['paired_halfwidth']:.1%}"),
            ("load (1 min) / CPUs", f"{_value((doctor.get('system') or {}).get('load_1min'))} / "
                                    f"{_value((doctor.get('system') or {}).get('cpus'))}" if doctor.get("system") else None),
            ("timing check took (s)", doctor.get("seconds"))]
    return [(name, _value(value)) for name, value in rows if value is not None]


def _validation_sentence(validation: dict | None) -> str:
    if not validation:
        return "Validation: this table has not been validated (mobilenas latency validate)."
    known = ("n", "within_5pct", "within_10pct", "mean_abs_err_pct", "p90_abs_err_pct", "spearman")
    if not all(isinstance(validation.get(k), (int, float)) for k in known):
        return f"Validation: {_plain(validation)}."
    return (f"Validation against {validation['n']} sampled models measured end to end: "
            f"{validation['within_5pct']:.0%} predicted within 5% and {validation['within_10pct']:.0%} within 10%, "
            f"mean absolute error {validation['mean_abs_err_pct']:.1f}% (90th percentile "
            f"{validation['p90_abs_err_pct']:.1f}%), rank correlation (Spearman) {validation['spearman']:.3f}.")


def _measured_phrase(measured: dict) -> str:
    if {"ratio", "low", "high", "latency_ms"} <= measured.keys():
        return (f"paired with the table's reference: {measured['ratio']:.3f}x [{measured['low']:.3f}, "
                f"{measured['high']:.3f}], {measured['latency_ms']:.4f} ms at that moment's speed")
    if {"latency_ms", "latency_min_ms", "latency_max_ms"} <= measured.keys():
        rounds = f" over {measured['rounds']} rounds" if "rounds" in measured else ""
        return (f"{measured['latency_ms']:.4f} ms, from {measured['latency_min_ms']:.4f} to "
                f"{measured['latency_max_ms']:.4f} ms{rounds}")
    return _plain(measured)


def ending_status(run: Pipeline) -> str:
    """The status the run ends with once the report is written: the report is the last stage and
    the runner marks the run finished right after it, so the manifest (which still says
    ``running`` while the report is written) would mislead."""
    names = [stage.name for stage in run.stages]
    records = run.records()
    done = all(records.get(n, {}).get("status") == Status.FINISHED for n in names if n != "report")
    return Status.FINISHED.value if done and names[-1:] == ["report"] else str(run.folder.manifest.get("status"))


def _start_sentence(run: Pipeline) -> str:
    """How the final model's training started (the references always start from scratch)."""
    if run.config.evaluator != "supernet":
        return ""
    return (" The search scored its candidates with weights inherited from a supernet, and the final model's "
            "training started from them (through NetAdapt), not from scratch as the references' did (once-for-all).")


def write_pipeline_report(run: Pipeline) -> tuple[Path, Path]:
    models = models_frame(run)
    final = models.iloc[0]
    spec = parse_spec(run.result("final")["arch"])
    target = run.result("table")["target_ms"]
    head = Section("Result", [
        f"Data {run.config.data}, budget {run.config.budget}, seed {run.config.seed}. Final model: test top-1 "
        f"{100 * final.top1:.2f}% (+/- {100 * final.top1_stderr:.2f}, binomial standard error), measured latency "
        f"{final.latency_ms:.4f} ms at this session's speed (the target, {target:.4f} ms, is in the latency "
        f"table's units, i.e. at its build's speed), {final.params:,} parameters, "
        f"{final.madds_m:.2f} M multiply-adds. Every model below was trained with the same recipe and budget and "
        "measured in one session, each paired with the same reference model, so their latencies compare."
        + _start_sentence(run)],
        tables=[models])
    arch = Section("Final architecture (the paper's table)",
                   tables=[pd.DataFrame(table_rows(spec, str(spec.num_classes)), columns=list(COLUMNS))],
                   code=run.result("final")["arch"])
    picture = Section("Accuracy and latency", figures=[plot_accuracy_latency(run, models, run.path / FIGURE)])
    status = ending_status(run)
    shown = {k: v for k, v in run.folder.manifest.items() if k != "stages"} | {"status": status}
    manifest = Section("Manifest", ["The run's resolved configuration, seed, package versions and machine "
                                    f"(manifest.json in {run.path}, status as the run ends)."],
                       code=json.dumps(shown, indent=2, default=str), folded="full manifest (JSON)")
    sections = [head, arch, picture, *_start_section(run), _netadapt_section(run), _latency_section(run), manifest]
    return write_report(run.path, "MobileNAS run report", sections, status=status)
