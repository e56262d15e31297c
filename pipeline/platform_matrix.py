"""The platform comparison's matrix: every found model timed on every platform, and its report.

Rows are the platform a model was found for, columns the platform it runs on; a cell is the
model's paired ratio to the ``target_like`` model on that platform (:mod:`latency.paired`),
divided by the target scale, so 1.0 is exactly the platform's target, with its 95% interval and
the model's test top-1 beside it. Every cell is measured alike: one column is one session on its
platform, all found models interleaved with the same reference, spread over
:data:`latency.paired.WHOLE_MODEL_SECONDS` like NetAdapt's round checks (a diagonal cell decides
whether a platform's model meets its target; a 2 x 12-pair column read torch eager's model
1.014x where its 10-s round check read 0.993x), kept as soon as it is measured
(``matrix/<platform>.json``). A model is on its platform's accuracy-latency Pareto front when no
other found model is both as fast there and as accurate, one of them strictly
(:func:`nas.pareto.pareto_front`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from latency.endtoend import measure_specs
from latency.fingerprint import device_fingerprint
from latency.paired import WHOLE_MODEL_PRECISION, WHOLE_MODEL_SECONDS
from nas.pareto import pareto_front
from pipeline.compare import adapted, dataset, found_results, found_specs, how_found, platform_cost_s, platform_target_ms
from pipeline.runner import Pipeline
from search_spaces.encoding import format_spec
from search_spaces.paper_table import render_markdown
from search_spaces.spec import ArchSpec
from storage.statefiles import read_json, write_json, write_text_atomic
from storage.status import Status

MATRIX_JSON, MATRIX_CSV, MATRIX_PNG, ARCHITECTURES_MD = "matrix.json", "matrix.csv", "matrix.png", "architectures.md"
CELL_FIELDS = {"found_for": str, "measured_on": str, "latency_ratio": float}


def measure_column(run: Pipeline, name: str) -> list[dict[str, Any]]:
    """Every found model timed on platform ``name``, paired with the ``target_like`` model there,
    each in a session of its own (as NetAdapt's round check times it, and as its user runs it):
    timed in one session with the other found models, a model's ratio moved by up to 5% either
    way (on ONNX Runtime int8 the int8 model read 1.005x MobileNetV3-Small in company and 0.984x
    alone, medians of 4 alternating 10-s readings; benchmarks/bench_session_company.py)."""
    config, found = run.config, found_specs(run)
    like = adapted(config.target_like, config.target_width, dataset(run))
    run.say(f"matrix: timing {len(found)} found models on {name}, one at a time")
    measurer = config.platform(name).make_measurer()
    ratios = [measure_specs(measurer, [spec], like, pairs=config.pairs, passes=2, precision=WHOLE_MODEL_PRECISION,
                            min_seconds=WHOLE_MODEL_SECONDS)[0] for spec in found.values()]
    scale = config.target_scale
    return [{"found_for": row, "measured_on": name, "latency_ratio": r.ratio / scale,
             "latency_ratio_low": r.low / scale, "latency_ratio_high": r.high / scale,
             "latency_ms_now": r.latency_ms, "target_like_ms_now": r.reference_ms, "pairs": r.pairs}
            for row, r in zip(found, ratios)]


def column(run: Pipeline, name: str) -> list[dict[str, Any]]:
    """The column of ``name``: read back when measured before, else measured and kept."""
    path = run.path / "matrix" / f"{name}.json"
    if path.is_file():
        return read_json(path, fields={"cells": list}, what="matrix column")["cells"]
    cells = measure_column(run, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, {"cells": cells})
    return cells


def stage_matrix(run: Pipeline) -> dict[str, Any]:
    """Every column, with each model's top-1 and whether it is on each platform's Pareto front."""
    accuracy = found_results(run)
    cells = []
    for name in run.config.names:
        run.check_stop()
        cells += column(run, name)
    for cell in cells:
        found = accuracy[cell["found_for"]]
        cell.update(top1=found["final_top1"], top1_stderr=found["final_top1_stderr"])
    return {"matrix": cells, "fronts": mark_fronts(cells, run.config.names)}


def mark_fronts(cells: list[dict[str, Any]], names: Sequence[str]) -> dict[str, list[str]]:
    """Set each cell's ``on_front``; returns each platform's front."""
    fronts = {n: on_front(cells, n) for n in names}
    for cell in cells:
        cell["on_front"] = cell["found_for"] in fronts[cell["measured_on"]]
    return fronts


def on_front(cells: list[dict[str, Any]], platform: str) -> list[str]:
    """The found models on ``platform``'s accuracy-latency Pareto front."""
    rows = pd.DataFrame([{"found_for": c["found_for"], "latency_ms": c["latency_ratio"], "top1": c["top1"],
                          "status": Status.FINISHED.value} for c in cells if c["measured_on"] == platform])
    return sorted(pareto_front(rows)["found_for"])


def verdicts(names: Sequence[str], cells: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per platform: does its own model meet its target (paired ratio <= 1) and lie on its front?"""
    result = {}
    for name in names:
        own = next(c for c in cells if c["found_for"] == name and c["measured_on"] == name)
        result[name] = {"meets_target": own["latency_ratio"] <= 1.0, "within_interval": own["latency_ratio_low"] <= 1.0,
                        "on_own_front": own["on_front"], "latency_ratio": own["latency_ratio"], "top1": own["top1"]}
    return result


def stage_report(run: Pipeline) -> dict[str, Any]:
    """``matrix.json`` (with a ``matrix`` key), ``matrix.csv``, ``architectures.md`` and ``matrix.png``."""
    from pipeline.platform_report import architecture_notes, plot_matrix

    cells, found = run.result("matrix")["matrix"], found_specs(run)
    document = {"matrix": cells, "verdicts": verdicts(run.config.names, cells),
                "found": {n: format_spec(s) for n, s in found.items()},
                "targets": {n: platform_target_ms(run, n) for n in run.config.names},
                "cost_s": {n: platform_cost_s(run, n) for n in run.config.names},
                "architecture_notes": architecture_notes(found),
                "config": run.config.to_dict(), "fingerprint": device_fingerprint()}
    write_json(run.path / MATRIX_JSON, document)
    pd.DataFrame(cells).to_csv(run.path / MATRIX_CSV, index=False)
    write_text_atomic(run.path / ARCHITECTURES_MD, architectures_markdown(run, found))
    plot_matrix(cells, run.config.names, run.path / MATRIX_PNG)
    return {"matrix_json": str(run.path / MATRIX_JSON), "verdicts": document["verdicts"]}


def architectures_markdown(run: Pipeline, found: dict[str, ArchSpec]) -> str:
    """The found models as the paper's tables, one per platform, with the matrix as a table."""
    cells = run.result("matrix")["matrix"]
    names = run.config.names
    lines = ["# Models found per platform", "",
             f"{how_found(run.config)} to each platform's target "
             f"({run.config.target_scale:g} x {run.config.target_like}'s latency there), on {run.config.data}.", "",
             "Latency relative to each platform's target (paired ratio, 95% interval); test top-1 per row.", "",
             "| found for \\ measured on | " + " | ".join(names) + " | top-1 |", "|---" * (len(names) + 2) + "|"]
    for row in names:
        cell = {c["measured_on"]: c for c in cells if c["found_for"] == row}
        text = [f"{cell[n]['latency_ratio']:.3f} [{cell[n]['latency_ratio_low']:.3f}, {cell[n]['latency_ratio_high']:.3f}]"
                + (" *" if cell[n]["on_front"] else "") for n in names]
        lines.append(f"| {row} | " + " | ".join(text) + f" | {cell[names[0]]['top1']:.4f} |")
    lines += ["", "`*`: on that platform's accuracy-latency Pareto front among the found models.", ""]
    for name, spec in found.items():
        lines += [f"## Found for {name}", "", f"`{format_spec(spec)}`", "", render_markdown(spec, str(spec.num_classes))]
    return "\n".join(lines) + "\n"


def read_matrix(path: str | Path) -> dict[str, Any]:
    """A ``matrix.json`` checked cell by cell."""
    document = read_json(path, fields={"matrix": list}, what="platform matrix")
    for cell in document["matrix"]:
        missing = [k for k, t in CELL_FIELDS.items() if not isinstance(cell.get(k), t)]
        if missing:
            raise ValueError(f"{path}: a matrix cell lacks {missing}")
    return document
