"""Benchmark: sample efficiency of the search strategies on a synthetic task with the real latency table.

Task (no training, so thousands of trials take minutes): the 3-channel, 1000-class MnasNet space
at resolution 32 (the shape ``results/latency/mnasnet-r32`` was built for). Latency is the
calibrated table prediction (``LatencyPredictor``); a spec with a missing key would fall back
to ``FALLBACK_MS_PER_MMADD`` x MAdds + ``FALLBACK_MS``, counted in the JSON (0 expected).
Accuracy is the closed form :func:`synthetic_top1`: capacity with diminishing returns (saturating
in log MAdds and log params) plus small known per-decision effects. The target is the median
latency of 500 random specs; the reward is MnasNet's soft constraint (w = -0.07).

Metric: median over seeds of random search's best reward after 200 trials; for every other
strategy, the trials it needs until its best reward reaches that level (target <= 100 each).
``--tune`` runs the hyper-parameter grid on disjoint seeds (100+) and writes the ranking.

    flock /tmp/mobilenas-bench.lock .venv/bin/python benchmarks/bench_search_sample_efficiency.py
    flock /tmp/mobilenas-bench.lock .venv/bin/python benchmarks/bench_search_sample_efficiency.py --tune
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import hashlib
import itertools
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from latency.predictor import LatencyPredictor
from latency.table import MissingKeyError
from nas.registry import make_config, make_strategy
from nas.rewards import RewardConfig
from nas.strategy import Outcome
from search_spaces.counting import spec_cost
from search_spaces.registry import SearchSpace, make_space
from storage.status import Status

TABLE = "results/latency/mnasnet-r32"
FALLBACK_MS, FALLBACK_MS_PER_MMADD = 0.3, 0.05  # only if a table key were missing
TARGET_TRIALS, RANDOM_TRIALS = 100, 200
STRATEGIES = ("evolution", "rl", "reinforce")
# per decision name: (effect in stages 0-2, effect in stages 3-6) added to top-1 for choice index 1
# (op: per op index below); MobileNetV3's findings: h-swish and SE pay off in the deeper stages.
EFFECTS = {"kernel": (-0.001, 0.002), "se": (0.0, 0.004), "skip": (0.003, 0.003), "act": (-0.002, 0.003)}
OP_EFFECTS = (-0.006, 0.0, 0.001, 0.002)  # conv, dsconv, mbconv3, mbconv6
STAGE_DECISIONS = ("op", "kernel", "se", "skip", "filters", "layers", "act")


def synthetic_top1(indices: tuple[int, ...], madds_m: float, params_m: float) -> float:
    """0.45 + 0.30 (1 - exp(-capacity / 0.35)) + per-decision effects, capacity = mean of the
    log MAdds and log params ratios to the space's smallest model (4.5 M MAdds, 3.08 M params)."""
    capacity = max(0.0, 0.5 * math.log(madds_m / 4.5) + 0.5 * math.log(params_m / 3.08))
    top1 = 0.45 + 0.30 * (1.0 - math.exp(-capacity / 0.35))
    for position, index in enumerate(indices):
        stage, name = divmod(position, 7)
        name = STAGE_DECISIONS[name]
        if name == "op":
            top1 += OP_EFFECTS[index]
        elif name in EFFECTS and index == 1:
            top1 += EFFECTS[name][stage >= 3]
    return min(top1, 1.0)


class SyntheticTask:
    """indices -> (top1, latency_ms, reward), cached per canonical point."""

    def __init__(self, space: SearchSpace, predictor: LatencyPredictor, target_samples: int = 500) -> None:
        self.space, self.predictor, self.fallbacks = space, predictor, 0
        self.cache: dict[tuple[int, ...], tuple[float, float, float]] = {}
        rng = np.random.default_rng(12345)
        latencies = [self._latency(space.decode(space.sample_indices(rng)))[0] for _ in range(target_samples)]
        self.reward = RewardConfig("mnasnet", float(np.median(latencies)))

    def _latency(self, spec) -> tuple[float, object]:
        cost = spec_cost(spec)
        try:
            return self.predictor.predict_ms(spec), cost
        except MissingKeyError:
            self.fallbacks += 1
            return FALLBACK_MS + FALLBACK_MS_PER_MMADD * cost.madds / 1e6, cost

    def __call__(self, indices: tuple[int, ...]) -> tuple[float, float, float]:
        if indices not in self.cache:
            latency_ms, cost = self._latency(self.space.decode(indices))
            top1 = synthetic_top1(indices, cost.madds / 1e6, cost.params / 1e6)
            self.cache[indices] = (top1, latency_ms, self.reward(top1, latency_ms))
        return self.cache[indices]


def run_curve(task: SyntheticTask, name: str, seed: int, trials: int, config=None) -> list[float]:
    """Rewards in proposal order; results are told in order, one at a time (sequential search)."""
    strategy = make_strategy(name, task.space, seed=seed, config=config)
    rewards = []
    for _ in range(trials):
        proposal = strategy.ask()
        top1, latency_ms, reward = task(proposal.indices)
        strategy.tell(proposal.proposal_id, Outcome(reward, Status.FINISHED, top1, latency_ms))
        rewards.append(reward)
    return rewards


def trials_to_reach(rewards: list[float], level: float) -> float:
    """1-based trial at which the running best first reaches ``level``; inf if never."""
    best = np.maximum.accumulate(rewards)
    hits = np.nonzero(best >= level)[0]
    return float(hits[0] + 1) if len(hits) else math.inf


def evaluate(task: SyntheticTask, seeds: list[int], trials: int, configs: dict[str, object]) -> dict:
    """Random's median best at RANDOM_TRIALS, then each strategy's median trials to reach it."""
    curves = {"random": {s: run_curve(task, "random", s, RANDOM_TRIALS) for s in seeds}}
    level = float(np.median([max(c) for c in curves["random"].values()]))
    summary = {"random_best_at_200": level, "strategies": {}}
    for name in STRATEGIES:
        start = time.time()
        curves[name] = {s: run_curve(task, name, s, trials, configs.get(name)) for s in seeds}
        reach = [trials_to_reach(c, level) for c in curves[name].values()]
        summary["strategies"][name] = {
            "median_trials_to_reach": float(np.median(reach)), "trials_to_reach": reach,
            "median_best_at_100": float(np.median([max(c[:TARGET_TRIALS]) for c in curves[name].values()])),
            "median_best_at_end": float(np.median([max(c) for c in curves[name].values()])),
            "met": bool(np.median(reach) <= TARGET_TRIALS), "seconds": round(time.time() - start, 1),
            "config": dataclasses.asdict(make_config(name, configs.get(name)))}
    return {"summary": summary, "curves": curves}


GRIDS = {  # what --tune searches; the winners are the shipped defaults
    "evolution": {"population_size": [5, 10, 20, 40], "sample_size": [2, 3, 5, 10]},
    "rl": {"learning_rate": [0.003, 0.01, 0.03], "batch_size": [5, 10], "entropy_weight": [0.0, 0.01, 0.05],
           "clip": [0.2], "ppo_epochs": [4]},
    "reinforce": {"learning_rate": [0.003, 0.01, 0.03, 0.1], "batch_size": [1, 5, 10], "entropy_weight": [0.0, 0.01]},
}
REFINE = {"rl": {"clip": [0.1, 0.3], "ppo_epochs": [2, 8]}}  # one at a time around the grid's winner


def grid_configs(name: str) -> list[dict]:
    """Every combination of the grid."""
    grid = dict(GRIDS[name])
    keys = list(grid)
    configs = [dict(zip(keys, values)) for values in itertools.product(*grid.values())]
    if name == "evolution":
        configs = [c for c in configs if c["sample_size"] <= c["population_size"]]
    return configs


def tune(task: SyntheticTask, seeds: list[int], trials: int, cache_path: Path | None = None) -> dict:
    """Score every grid point on ``seeds``; rank: meets the target first, then the higher median
    best reward at the end, then fewer trials (a policy that collapses early reaches random's
    level fast but ends lower, and the shipped default must serve long searches too).

    ``cache_path``: JSON lines of finished rows, reused on a rerun (results are deterministic).
    """
    level = float(np.median([max(run_curve(task, "random", s, RANDOM_TRIALS)) for s in seeds]))
    cache = _load_cache(cache_path, seeds, trials)
    ranking: dict[str, list] = {}

    def score(name: str, config: dict) -> dict:
        key = json.dumps([name, config], sort_keys=True)
        if key not in cache:
            curves = [run_curve(task, name, s, trials, config) for s in seeds]
            cache[key] = {"config": config,
                          "median_trials_to_reach": float(np.median([trials_to_reach(c, level) for c in curves])),
                          "median_best_at_end": float(np.median([max(c) for c in curves]))}
            if cache_path is not None:
                with cache_path.open("a") as handle:
                    handle.write(json.dumps({"key": key, "seeds": seeds, "trials": trials, "row": cache[key]}) + "\n")
        row = {**cache[key], "resolved": dataclasses.asdict(make_config(name, config))}
        print(f"{name} {config} -> {row['median_trials_to_reach']} trials, best {row['median_best_at_end']:.4f}", flush=True)
        return row

    def rank(rows: list[dict]) -> list[dict]:
        return sorted(rows, key=lambda r: (r["median_trials_to_reach"] > TARGET_TRIALS, -r["median_best_at_end"],
                                           r["median_trials_to_reach"]))

    for name in STRATEGIES:
        rows = rank([score(name, config) for config in grid_configs(name)])
        winner = rows[0]["config"]
        for key, values in REFINE.get(name, {}).items():
            rows = rank(rows + [score(name, {**winner, key: value}) for value in values])
        ranking[name] = [{**r, "median_trials_to_reach": finite_or_none(r["median_trials_to_reach"])} for r in rows]
    return {"seeds": seeds, "trials": trials, "random_best_at_200": level, "ranking": ranking}


def _load_cache(path: Path | None, seeds: list[int], trials: int) -> dict[str, dict]:
    if path is None or not path.exists():
        return {}
    entries = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {e["key"]: e["row"] for e in entries if e["seeds"] == seeds and e["trials"] == trials}


def table_digest(folder: str) -> str:
    """sha256 of the table's entries and calibration: the figures hold for this table only."""
    digest = hashlib.sha256()
    for name in ("entries.csv", "calibration.csv"):
        digest.update((Path(folder) / name).read_bytes())
    return digest.hexdigest()


def finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def write_curves(curves: dict, path: Path) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["strategy", "seed", "trial", "reward", "best_reward"])
        for name, by_seed in curves.items():
            for seed, rewards in by_seed.items():
                for trial, (reward, best) in enumerate(zip(rewards, np.maximum.accumulate(rewards)), start=1):
                    writer.writerow([name, seed, trial, f"{reward:.6f}", f"{best:.6f}"])


def plot(curves: dict, level: float, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, by_seed in curves.items():
        best = np.array([np.maximum.accumulate(r) for r in by_seed.values()])
        x = np.arange(1, best.shape[1] + 1)
        line, = ax.plot(x, np.median(best, axis=0), label=f"{name} (median of {best.shape[0]})")
        ax.fill_between(x, *np.percentile(best, [25, 75], axis=0), color=line.get_color(), alpha=0.15)
    ax.axhline(level, color="grey", ls="--", lw=1, label="random: median best at 200")
    ax.axvline(TARGET_TRIALS, color="grey", ls=":", lw=1, label=f"target: reach it by {TARGET_TRIALS}")
    ax.set_xlabel("trials")
    ax.set_ylabel("best reward so far (MnasNet, w = -0.07)")
    ax.set_ylim(level - 0.03, None)
    ax.set_title("Search sample efficiency: synthetic accuracy, real r32 latency table\n(band: 25-75% over seeds)")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--trials", type=int, default=200, help="trials per run of the learning strategies")
    parser.add_argument("--tune", action="store_true", help="run the grid on seeds 100.. instead")
    parser.add_argument("--out", default="results/search")
    parser.add_argument("--cache", type=Path, help="--tune: JSON-lines cache of scored grid points (reused on rerun)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    space = make_space("mnasnet", resolution=32, num_classes=1000, in_channels=3)
    task = SyntheticTask(space, LatencyPredictor.load(TABLE, force=True))
    start = time.time()
    if args.tune:
        result = tune(task, list(range(100, 100 + args.seeds)), args.trials, args.cache)
        result["table_sha256"] = table_digest(TABLE)
        (out / "sample_efficiency_tuning.json").write_text(json.dumps(result, indent=1) + "\n")
        return
    result = evaluate(task, list(range(args.seeds)), args.trials, {})
    summary = result["summary"]
    for entry in summary["strategies"].values():
        entry["median_trials_to_reach"] = finite_or_none(entry["median_trials_to_reach"])
        entry["trials_to_reach"] = [finite_or_none(v) for v in entry["trials_to_reach"]]
    summary.update({"target_trials": TARGET_TRIALS, "seeds": args.seeds, "trials": args.trials,
                    "target_ms": task.reward.target_ms, "reward": task.reward.to_dict(), "table": TABLE,
                    "latency_fallbacks": task.fallbacks, "table_sha256": table_digest(TABLE), "torch_threads": 1,
                    "best_reward_seen": max(max(r) for c in result["curves"].values() for r in c.values()),
                    "wall_s": round(time.time() - start, 1)})
    (out / "sample_efficiency.json").write_text(json.dumps(summary, indent=1) + "\n")
    write_curves(result["curves"], out / "sample_efficiency_curves.csv")
    plot(result["curves"], summary["random_best_at_200"], out / "sample_efficiency.png")
    print(json.dumps({k: v for k, v in summary.items() if k != "strategies"}, indent=1))
    for name, entry in summary["strategies"].items():
        print(name, entry["median_trials_to_reach"], "met" if entry["met"] else "missed")


if __name__ == "__main__":
    main()
