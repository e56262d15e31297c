"""Real search on the embedded data: best reward of RL (PPO) and regularized evolution vs random
search at an equal trial budget, seeds 0-2, with the proxy accuracy's standard error alongside.

Every search: mnist-rot-back-image (the search default), 1 proxy epoch on 600 training images,
MnasNet's soft reward (w = -0.07) at the median predicted latency of 30 sampled specs,
the default Ray Tune layout (2 trials x 1 CPU). Evolution: population 6, sample 3 (the default
population of 20 would be random search within this budget); RL: the default controller
(PPO, batch 5).

    flock /tmp/mobilenas-bench.lock .venv/bin/python benchmarks/bench_search_strategies.py [--trials 12]
"""
from __future__ import annotations

import argparse
import json

import numpy as np

from bench_search_common import DATA, RESULTS, percentile_targets, ensure_bench_table, run_search, write_json

STRATEGIES = {"random": None, "evolution": {"population_size": 6, "sample_size": 3}, "rl": None}
SEEDS = (0, 1, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=12)
    args = parser.parse_args()
    ensure_bench_table()
    target = percentile_targets()[50]
    runs = []
    for seed in SEEDS:
        for name, config in STRATEGIES.items():
            extra = ["--strategy-config", json.dumps(config)] if config else []
            result = run_search(f"strategies-{name}-s{seed}-t{args.trials}", [
                "--data", DATA, "--target-ms", str(target), "--strategy", name, *extra, "--trials", str(args.trials),
                "--train-subset", "600", "--seed", str(seed)])
            runs.append({"strategy": name, "seed": seed, "best_reward": result["best_reward"],
                         "best_top1": result["best_top1"], "best_top1_stderr": result["best_top1_stderr"],
                         "best_latency_ms": result["best_latency_ms"], "trials": result["trials"],
                         "statuses": result["statuses"], "run_dir": result["run_dir"]})
            print(runs[-1], flush=True)
    summary = {}
    for name in STRATEGIES:
        rewards = [r["best_reward"] for r in runs if r["strategy"] == name]
        summary[name] = {"median_best_reward": float(np.median(rewards)), "min": min(rewards), "max": max(rewards),
                         "median_best_top1_stderr": float(np.median([r["best_top1_stderr"] for r in runs
                                                                     if r["strategy"] == name]))}
    write_json(RESULTS / "strategies.json", {"trials": args.trials, "seeds": list(SEEDS), "target_ms": target,
                                              "data": DATA, "train_subset": 600, "epochs": 1, "summary": summary,
                                              "runs": runs})
    print(summary)


if __name__ == "__main__":
    main()
