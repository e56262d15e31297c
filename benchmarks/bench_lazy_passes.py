"""Passes per layer in a lazy table: what measuring each missing layer in one pass instead of up
to three costs in the search's predictions, against how far two measurements of the same layers
already disagree.

For each finished ``mobilenas run`` folder given, the run's latency table is copied as its table
stage left it (the first entries; the rest were added by the search and NetAdapt), and the
search's candidates are priced again into each copy, once with ``max_passes`` 3 (the table
builds' default) and once with 1, the order alternating from run to run. Compared: the seconds
each took, the candidates' predictions and per-layer sums of the copies against each other, and
of each against the run's own table (the same layers measured during the run: the spread of two
measurements of one protocol). Run it under the load injector, as the runs were:

    .venv/bin/python -m latency.noise -- .venv/bin/python benchmarks/bench_lazy_passes.py \
        --runs RUN_DIR [RUN_DIR ...] --out results/latency/lazy_passes.json
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from latency.fingerprint import device_fingerprint
from latency.lazy import LazyPredictor
from latency.predictor import LatencyPredictor
from latency.table import ENTRIES_FILE, MANIFEST_FILE, load_table
from search_spaces.encoding import parse_spec
from search_spaces.spec import ArchSpec
from storage.runfolder import machine_info, package_versions
from storage.statefiles import write_json

PASSES = (3, 1)


def stage_copy(table: Path, entries: int, passes: int, into: Path) -> Path:
    """``table`` as it stood with its first ``entries`` layers, set to measure ``passes`` passes."""
    shutil.copytree(table, into)
    frame = pd.read_csv(into / ENTRIES_FILE)
    frame.head(entries).to_csv(into / ENTRIES_FILE, index=False)
    manifest = json.loads((into / MANIFEST_FILE).read_text())
    manifest["entries"] = entries
    manifest["build"]["max_passes"] = passes
    (into / MANIFEST_FILE).write_text(json.dumps(manifest))
    return into


def search_specs(run: Path) -> list[ArchSpec]:
    trials = pd.read_csv(next((run / "search").glob("*/trials.csv")))
    return [parse_spec(s) for s in trials.sort_values("trial").spec]


def table_stage_entries(run: Path) -> int:
    manifest = json.loads((run / "manifest.json").read_text())
    return int(manifest["stages"]["table"]["result"]["record"]["entries"])


def spread(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    d = np.abs(a / b - 1)
    return {"median_abs_pct": 100 * float(np.median(d)), "p90_abs_pct": 100 * float(np.percentile(d, 90))}


def one_run(run: Path, order: tuple[int, ...], scratch: Path) -> dict:
    specs, entries = search_specs(run), table_stage_entries(run)
    tables, seconds = {}, {}
    for passes in order:
        folder = stage_copy(run / "latency", entries, passes, scratch / f"{run.name}-p{passes}")
        lazy = LazyPredictor(folder, trusted=True)
        start = time.perf_counter()
        for spec in specs:
            lazy.predict_ms(spec)
        seconds[passes] = time.perf_counter() - start
        tables[passes] = load_table(folder, force=True)
        print(f"{run.name}: {passes} pass(es): {lazy.measured_keys} layers in {seconds[passes]:.1f} s", flush=True)
    tables["run"] = load_table(run / "latency", force=True)
    predicted = {k: np.array([LatencyPredictor(t).predict_ms(s) for s in specs]) for k, t in tables.items()}
    sums = {k: np.array([LatencyPredictor(t).explain(s).sum_ms for s in specs]) for k, t in tables.items()}
    pairs = (("1_vs_3", 1, 3), ("3_vs_run", 3, "run"), ("1_vs_run", 1, "run"))
    return {"run": run.name, "order": list(order), "candidates": len(specs), "start_entries": entries,
            "seconds": {str(k): round(v, 2) for k, v in seconds.items()},
            "prediction": {name: spread(predicted[a], predicted[b]) for name, a, b in pairs},
            "layer_sum": {name: spread(sums[a], sums[b]) for name, a, b in pairs}}


def summarise(rows: list[dict]) -> dict:
    med = lambda values: round(statistics.median(values), 2)  # noqa: E731
    out = {f"seconds_{p}_passes_median": med([r["seconds"][str(p)] for r in rows]) for p in PASSES}
    out["time_saved_pct_median"] = med([100 * (1 - r["seconds"]["1"] / r["seconds"]["3"]) for r in rows])
    for name in ("1_vs_3", "3_vs_run", "1_vs_run"):
        out[f"prediction_{name}_median_abs_pct"] = med([r["prediction"][name]["median_abs_pct"] for r in rows])
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=Path, nargs="+", required=True, help="finished `mobilenas run` folders")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="lazy-passes-") as scratch:
        for index, run in enumerate(args.runs):
            order = PASSES if index % 2 == 0 else PASSES[::-1]
            rows.append(one_run(run.resolve(), order, Path(scratch)))
            print(json.dumps(rows[-1]["prediction"]), flush=True)
    summary = summarise(rows)
    print(json.dumps(summary, indent=1))
    write_json(args.out, {"what": __doc__.splitlines()[0], "date_utc": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M"),
                          "machine": machine_info(), "fingerprint": device_fingerprint(), "packages": package_versions(),
                          "summary": summary, "rows": rows})


if __name__ == "__main__":
    main()
