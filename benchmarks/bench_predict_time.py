"""What one latency prediction costs: table sum, calibrated table and each learned model type.

A search prices every candidate and NetAdapt every proposal, so a prediction must stay cheap
(target: <= 1 ms per spec). The learned models are fitted here on real whole-model
measurements: the calibration and validation specs a committed table holds (their measured
latency), with the same features, estimators and serialisation as ``mobilenas latency fit``;
each is then loaded from its ``predictor.json`` the way a table opens it.

Timing: ``n`` specs sampled from the table's space, every predictor called on each spec in
turn (interleaved, so a slow moment of the machine hits all alike), each call timed on the
thread CPU clock (what the prediction itself costs; other processes do not add to it) and on
the wall clock. Medians and the 10th-90th percentiles are reported; numpy's threads are
pinned to 1. The table is opened with ``on_drift="force"``: its latencies are not used, only
its entries as features, so the machine it was measured on does not matter here.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_predict_time.py \\
        --table results/latency/mnasnet-r32 --specs 300

writes ``results/latency/predict_time.json``.
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from latency.features import feature_matrix  # noqa: E402
from latency.fingerprint import device_fingerprint  # noqa: E402
from latency.fitting import FitConfig, fit_document  # noqa: E402
from latency.keys import spec_keys  # noqa: E402
from latency.lazy import LazyPredictor  # noqa: E402
from latency.learned import MODEL_TYPES, save_model  # noqa: E402
from latency.predictor import LatencyPredictor  # noqa: E402
from latency.validation import sample_specs  # noqa: E402
from search_spaces.encoding import parse_spec  # noqa: E402
from search_spaces.mnasnet_space import MnasNetSpace  # noqa: E402
from storage.statefiles import write_json  # noqa: E402

TARGET_MS = 1.0


def measured_rows(folder: Path) -> pd.DataFrame:
    """The table's whole-model measurements: calibration and validation specs, spec and ms."""
    frames = [pd.read_csv(folder / name, usecols=["spec", "measured_ms"])
              for name in ("calibration.csv", "validation.csv") if (folder / name).is_file()]
    rows = pd.concat(frames).drop_duplicates("spec")
    return rows[rows["measured_ms"] > 0]


def fit_into(folder: Path, lazy: LazyPredictor, rows: pd.DataFrame, model_type: str) -> dict:
    """Fit ``model_type`` on ``rows`` and store it as the table's ``predictor.json``."""
    specs = [parse_spec(s) for s in rows["spec"]]
    measurements = folder / "measurements.csv"
    rows.to_csv(measurements, index=False)
    document = fit_document(feature_matrix(lazy.table, specs), rows["measured_ms"].to_numpy(), lazy.table.manifest,
                            measurements, FitConfig(model_types=(model_type,)))
    save_model(folder, document)
    return document


def time_calls(calls: dict, specs: list) -> dict[str, dict[str, float]]:
    """Per call name: median and 10th/90th percentile of thread-CPU and wall ms per spec."""
    cpu, wall = {name: [] for name in calls}, {name: [] for name in calls}
    for spec in specs:
        for name, call in calls.items():
            c, w = time.thread_time(), time.perf_counter()
            call(spec)
            cpu[name].append(1000 * (time.thread_time() - c))
            wall[name].append(1000 * (time.perf_counter() - w))
    return {name: {"cpu_ms_median": float(np.median(cpu[name])), "cpu_ms_p10": float(np.percentile(cpu[name], 10)),
                   "cpu_ms_p90": float(np.percentile(cpu[name], 90)), "wall_ms_median": float(np.median(wall[name])),
                   "wall_ms_p10": float(np.percentile(wall[name], 10)), "wall_ms_p90": float(np.percentile(wall[name], 90))}
            for name in calls}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", type=Path, default=Path("results/latency/mnasnet-r32"))
    parser.add_argument("--specs", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("results/latency/predict_time.json"))
    args = parser.parse_args()
    results, work = {}, Path(tempfile.mkdtemp(prefix="predict-time-"))
    try:
        folder = work / "table"
        shutil.copytree(args.table, folder, ignore=shutil.ignore_patterns("predictor*.json", "measurements.csv"))
        rows = measured_rows(folder)
        for model_type in MODEL_TYPES:
            document = fit_into(folder, LazyPredictor(folder, on_drift="force"), rows, model_type)
            lazy = LazyPredictor(folder, on_drift="force")
            calibrated = LatencyPredictor(lazy.table)
            shape = parse_spec(rows["spec"].iloc[0])
            space = MnasNetSpace(resolution=shape.resolution, num_classes=shape.num_classes, in_channels=shape.in_channels)
            specs = sample_specs(space, args.specs, args.seed, exclude=set(rows["spec"]))
            lazy.predict_many(specs[:5])  # load the model and the caches of the first call
            timed = time_calls({"learned": lazy.predict_ms, "calibrated": calibrated.predict_ms,
                                "table_sum": lambda s: lazy.table.keys_sum_ms(spec_keys(s))}, specs)
            results[model_type] = {**timed, "fitted_rows": len(rows), "trees": len(document["model"].get("trees", [])),
                                   "met": timed["learned"]["cpu_ms_median"] <= TARGET_MS}
            print(f"{model_type}: learned {timed['learned']['cpu_ms_median']:.3f} ms CPU "
                  f"[{timed['learned']['cpu_ms_p10']:.3f}, {timed['learned']['cpu_ms_p90']:.3f}], wall "
                  f"{timed['learned']['wall_ms_median']:.3f}; calibrated {timed['calibrated']['cpu_ms_median']:.3f}; "
                  f"table sum {timed['table_sum']['cpu_ms_median']:.3f} (target <= {TARGET_MS} ms)")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    write_json(args.out, {"table": str(args.table), "specs": args.specs, "seed": args.seed, "target_ms": TARGET_MS,
                          "load_average": os.getloadavg(), "fingerprint": device_fingerprint(),
                          "threads": os.environ["OMP_NUM_THREADS"], "results": results})


if __name__ == "__main__":
    main()
