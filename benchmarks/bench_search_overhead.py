"""Framework overhead of a real proxy search at the default concurrency (Ray Tune, 2 trials x 1 CPU).

Overhead = search wall time / summed trial training time, where a trial's training time is what
``training.evaluate.proxy_evaluate`` measures inside the trial (build, train, evaluate). Reported
twice: against the plain sum (the brief's ratio; below 1 when trials overlap) and against the sum
divided by the concurrency (1.0 = perfect packing of the trials on the slots; this is the strict
measure of what Ray, the driver, the latency lookups and the state files cost). Wall time is taken
for the trial loop alone (first trial start to last trial end, from Ray's results), for Tuner.fit
(adds starting the workers, shipping the data and pricing the first proposals) and for the whole
command (adds Python start, data, table probe, Ray start).

    flock /tmp/mobilenas-bench.lock .venv/bin/python benchmarks/bench_search_overhead.py
"""
from __future__ import annotations

import argparse

import json
from pathlib import Path

from bench_search_common import DATA, RESULTS, ensure_bench_table, run_search, write_json


def trial_span_s(run_dir: str) -> float:
    """First trial start to last trial end (s), from the final result Ray Tune wrote per trial:
    the trial loop without the fixed cost of starting Tune's workers and the first pricing."""
    intervals = []
    for path in Path(run_dir).glob("ray_results/tune-*/*/result.json"):
        last = json.loads(path.read_text().splitlines()[-1])
        intervals.append((last["timestamp"] - last["time_total_s"], last["timestamp"]))
    intervals.sort()
    return max(end for _, end in intervals) - intervals[0][0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--name", default="overhead", help="record name (a new name runs a new search)")
    args = parser.parse_args()
    ensure_bench_table()
    result = run_search(f"{args.name}-{args.trials}", ["--data", DATA, "--target-ms", "0.3", "--strategy", "random",
                                                     "--trials", str(args.trials), "--seed", "0"])
    session = result["sessions"][-1]
    span = trial_span_s(result["run_dir"])
    concurrency = result["config"]["concurrency"]
    summed = result["trial_train_s"]
    figures = {"trials": result["trials"], "concurrency": concurrency, "cpus_per_trial": result["config"]["cpus_per_trial"],
               "summed_trial_train_s": summed, "tune_wall_s": session["tune_wall_s"],
               "ray_start_s": session["started_s"], "latency_predict_s": session.get("latency_predict_s"), "command_wall_s": result["command_wall_s"][-1] if result["command_wall_s"] else None,
               "overhead_tune_vs_sum": round(session["tune_wall_s"] / summed, 3),
               "overhead_tune_vs_sum_per_slot": round(session["tune_wall_s"] / (summed / concurrency), 3),
               "overhead_command_vs_sum_per_slot": (round(result["command_wall_s"][-1] / (summed / concurrency), 3)
                                                    if result["command_wall_s"] else None),
               "trial_loop_span_s": round(span, 2),
               "overhead_loop_span_vs_sum_per_slot": round(span / (summed / concurrency), 3),
               "overhead_tune_minus_latency_vs_sum_per_slot": (
                   round((session["tune_wall_s"] - session["latency_predict_s"]) / (summed / concurrency), 3)
                   if session.get("latency_predict_s") is not None else None),
               "target": "<= 1.15 (search wall / summed trial training time)", "data": DATA, "epochs": 1,
               "resumed": len(result["sessions"]) > 1}
    write_json(RESULTS / "overhead.json", figures)
    print(figures)


if __name__ == "__main__":
    main()
