"""Hitting the latency target: one search per target (the 20th/50th/80th percentile of the
predicted latencies of 30 uniformly sampled specs); the best model's end-to-end latency is then
measured end to end, paired run by run with the table's reference model (``latency.endtoend``),
and compared with the target in the table's units (+/-10%).

Each search: TuNAS's absolute reward ACC - 0.5 |LAT/T - 1| (it peaks at the target; MnasNet's
soft product reward does not aim at it), regularized evolution (population 5, sample 2),
10 trials of 1 proxy epoch on 500 training images of mnist-rot-back-image.

    flock /tmp/mobilenas-bench.lock .venv/bin/python benchmarks/bench_search_target.py
"""
from __future__ import annotations

import json

from bench_search_common import (DATA, RESULTS, TABLE, calibration_tag, ensure_bench_table, percentile_targets,
                                 run_search, write_json)

TRIALS = 10


def measure_end_to_end(spec_text: str) -> dict:
    """The spec's paired ratio to the table's reference, in the table's units (what the search
    compared with the target) and in ms at this moment's speed."""
    from latency.lazy import LazyPredictor
    from search_spaces.encoding import parse_spec

    lazy = LazyPredictor(TABLE)
    paired = lazy.measure([parse_spec(spec_text)], passes=3)[0]
    return {"measured_table_ms": paired.in_units_of(lazy.table.reference_baseline_ms), "measured_now_ms": paired.latency_ms,
            "ratio_to_reference": paired.ratio, "ratio_interval": [paired.low, paired.high]}


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
        error = measured["measured_table_ms"] / target - 1
        row["error_pct"] = round(100 * error, 2)
        row["within_10pct"] = abs(error) <= 0.10
        rows.append(row)
        print(row, flush=True)
    write_json(RESULTS / "target.json", {"table_calibration": calibration_tag(), "trials_per_search": TRIALS, "data": DATA, "reward": "absolute, beta -0.5",
                                          "strategy": "evolution (population 5, sample 2)", "targets": rows,
                                          "target": "measured latency of the best model within +/-10% of the target"})


if __name__ == "__main__":
    main()
