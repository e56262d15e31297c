"""Hitting the latency target: one search per target (the 20th/50th/80th percentile of the
predicted latencies of 30 uniformly sampled specs); the best model's end-to-end latency is then
measured with ONNX Runtime (``latency.measurers``, the table's measurer settings), raw and
normalised by the table's interleaved reference model, and compared with the target (+/-10%).

Each search: TuNAS's absolute reward ACC - 0.5 |LAT/T - 1| (it peaks at the target; MnasNet's
soft product reward does not aim at it), regularized evolution (population 5, sample 2),
10 trials of 1 proxy epoch on 500 training images of mnist-rot-back-image.

    flock /tmp/mobilenas-bench.lock .venv/bin/python benchmarks/bench_search_target.py
"""
from __future__ import annotations

import json

import numpy as np

from bench_search_common import (DATA, RESULTS, TABLE, calibration_tag, ensure_bench_table, percentile_targets,
                                 run_search, write_json)

TRIALS = 10


def measure_end_to_end(spec_text: str) -> dict:
    """Raw ORT median (measure_model_ms) and the reference-normalised latency of one spec."""
    from latency.endtoend import Reference, measure_specs, prepared_model, spec_input_shape
    from latency.measurers import measure_model_ms
    from latency.registry import measurer_from_recorded
    from latency.table import read_manifest
    from search_spaces.encoding import parse_spec

    spec = parse_spec(spec_text)
    manifest = read_manifest(TABLE)
    measurer = measurer_from_recorded(manifest["measurer"])
    raw = float(np.median(measure_model_ms(prepared_model(measurer, spec), (1, *spec_input_shape(spec)))))
    ref_spec = parse_spec(manifest["reference"]["spec"])
    reference = Reference(ref_spec, prepared_model(measurer, ref_spec), [])
    normalised = measure_specs(measurer, [spec], reference, float(manifest["reference"]["baseline_ms"]), rounds=5)[0]
    return {"measured_raw_ms": raw, "measured_normalised_ms": normalised.latency_ms,
            "measured_rounds_raw_ms": normalised.raw_ms}


def main() -> None:
    ensure_bench_table()
    targets = percentile_targets()
    rows = []
    for quantile, target in targets.items():
        result = run_search(f"target-{calibration_tag()}-p{quantile}", [
            "--data", DATA, "--target-ms", str(target), "--reward", "absolute", "--w", "-0.5",
            "--strategy", "evolution", "--strategy-config", json.dumps({"population_size": 5, "sample_size": 2}),
            "--trials", str(TRIALS), "--train-subset", "500", "--seed", "0"])
        measured = measure_end_to_end(result["best_spec"])
        row = {"quantile": quantile, "target_ms": target, "best_predicted_ms": result["best_latency_ms"],
               "best_top1": result["best_top1"], "best_top1_stderr": result["best_top1_stderr"], **measured,
               "run_dir": result["run_dir"], "best_spec": result["best_spec"]}
        for kind in ("raw", "normalised"):
            error = measured[f"measured_{kind}_ms"] / target - 1
            row[f"error_{kind}_pct"] = round(100 * error, 2)
            row[f"within_10pct_{kind}"] = abs(error) <= 0.10
        rows.append(row)
        print(row, flush=True)
    write_json(RESULTS / "target.json", {"table_calibration": calibration_tag(), "trials_per_search": TRIALS, "data": DATA, "reward": "absolute, beta -0.5",
                                          "strategy": "evolution (population 5, sample 2)", "targets": rows,
                                          "target": "measured latency of the best model within +/-10% of the target"})


if __name__ == "__main__":
    main()
