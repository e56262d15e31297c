"""RL, evolution and random search at scale with the one-shot supernet evaluator.

With proxy training a candidate costs ~9 CPU-seconds, so the committed strategy comparisons
stop at tens of trials; with weights inherited from a trained supernet (``nas.supernet_eval``)
a candidate costs a BatchNorm recalibration and one validation pass, so each strategy can see
hundreds. Every search runs in-process (``nas.search.run_serial``, the same driver, strategies,
rewards and ``trials.csv`` as ``mobilenas search``), priced by the committed latency table
``results/latency/mnasnet-r32`` at its deployment shape (3x32x32, 1000 classes; the table's
recorded figures, no drift rescaling: the benchmark is about search, not timing; the supernet's
space, ``mnasnet-mbconv``, is a part of the table's ``mnasnet``), MnasNet reward
at the median latency of 200 sampled specs. The supernet evaluation is deterministic per spec, so
a repeated proposal is answered from a cache (counted in ``unique``).

    python benchmarks/bench_supernet_search.py --supernet results/runs/bench-supernet/<run> \
        --trials 300 --seeds 0 1

writes ``results/search/supernet_strategies.json`` and ``supernet_strategies.png``. A killed
benchmark rerun continues: finished searches are read back from their run folders.

At scale (the issue's 1,000 candidates x 5 seeds) run one process per seed, on a GPU where one
is lent (``--device cuda``), then merge their JSON files::

    python benchmarks/bench_supernet_search.py --supernet RUN --trials 1000 --seeds 3 --device cuda \
        --out s3.json                      # one per seed, in parallel
    python benchmarks/bench_supernet_search.py --merge s*.json --out results/search/supernet_strategies_1000.json

The merged file adds the target of the comparison: for each seed, how many candidates evolution
and RL needed to reach the best reward random search found in all its candidates.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from nas.evaluator import request_fn  # noqa: E402
from nas.registry import make_strategy  # noqa: E402
from nas.search import SearchConfig, SearchDriver, run_serial  # noqa: E402
from nas.supernet_eval import SupernetEvaluator, trained_space  # noqa: E402
from nas.trial_log import TrialLog  # noqa: E402
from search_spaces.registry import make_space  # noqa: E402
from training.datasets import load_dataset  # noqa: E402

TABLE = ROOT / "results" / "latency" / "mnasnet-r32"
WORK = ROOT / "results" / "runs" / "bench-supernet-search"
RESULTS = ROOT / "results" / "search"
STRATEGIES = ("rl", "evolution", "random")
CHECKPOINTS = (25, 50, 100, 200, 300, 500, 1000)


class CachedEvaluator:
    """A deterministic evaluator with answers kept per canonical spec (repeats cost nothing)."""

    def __init__(self, evaluator: SupernetEvaluator) -> None:
        self.evaluator, self.cache, self.eval_s = evaluator, {}, 0.0

    def __call__(self, request):
        if request.spec not in self.cache:
            from search_spaces.encoding import parse_spec

            result = self.evaluator.evaluate(parse_spec(request.spec))
            self.cache[request.spec] = result
            self.eval_s += result.wall_s
        return self.cache[request.spec]


def target_ms(predict, space, n: int = 200, seed: int = 123) -> float:
    rng = np.random.default_rng(seed)
    return float(np.median([predict(space.sample(rng)) for _ in range(n)]))


def run_one(strategy: str, seed: int, trials: int, evaluator: CachedEvaluator, predict, target: float,
            work: Path = WORK) -> dict:
    folder = work / f"{strategy}-s{seed}-n{trials}"
    folder.mkdir(parents=True, exist_ok=True)
    config = SearchConfig(target_ms=target, strategy=strategy, trials=trials, seed=seed, evaluator="supernet",
                          supernet=evaluator.evaluator.source.get("run_dir"), price_in_channels=3, price_classes=1000)
    space = evaluator.evaluator.net.space
    driver = SearchDriver(folder, config, space, make_strategy(strategy, space, seed=seed), predict)
    driver.resume()
    start = time.perf_counter()
    run_serial(driver, evaluator)
    frame = TrialLog(folder).frame()
    best_so_far = np.maximum.accumulate(frame["reward"].to_numpy())
    best = driver.best()
    return {"strategy": strategy, "seed": seed, "trials": len(frame), "unique_specs": int(frame["spec"].nunique()),
            "wall_s_this_session": round(time.perf_counter() - start, 1),
            "best_reward": float(best.reward), "best_top1": float(best.top1), "best_latency_ms": float(best.latency_ms),
            "best_spec": best.spec, "best_reward_at": {str(n): float(best_so_far[n - 1]) for n in CHECKPOINTS
                                                       if n <= len(frame)},
            "curve": [round(float(v), 6) for v in best_so_far]}


def candidates_to_reach(curve: list[float], level: float) -> int | None:
    """The number of candidates after which the best reward so far reached ``level`` (None: never)."""
    hits = np.flatnonzero(np.asarray(curve) >= level)
    return int(hits[0]) + 1 if hits.size else None


def reach_random_best(runs: list[dict]) -> dict:
    """Per seed, random search's best reward over all its candidates and the candidates each
    other strategy of that seed needed to reach it; the median over seeds (a miss counts as
    more than the strategy's trials)."""
    per_seed, out = {}, {}
    for seed in sorted({r["seed"] for r in runs}):
        of_seed = {r["strategy"]: r for r in runs if r["seed"] == seed}
        if "random" not in of_seed:
            continue
        level = of_seed["random"]["curve"][-1]
        per_seed[str(seed)] = {"random_trials": len(of_seed["random"]["curve"]), "random_best_reward": level,
                               **{s: candidates_to_reach(r["curve"], level) for s, r in of_seed.items() if s != "random"}}
    for strategy in ("evolution", "rl"):
        counts = [row[strategy] for row in per_seed.values() if strategy in row]
        trials = [len(r["curve"]) for r in runs if r["strategy"] == strategy]
        if counts:
            as_number = [c if c is not None else max(trials) + 1 for c in counts]
            median = float(np.median(as_number))
            out[strategy] = {"candidates_to_reach_median": median if median <= max(trials) else None,
                             "reached_in_seeds": sum(c is not None for c in counts), "seeds": len(counts),
                             "within_300": sum(c is not None and c <= 300 for c in counts)}
    return {"per_seed": per_seed, "summary": out}


def plot(runs: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for i, strategy in enumerate(STRATEGIES):
        curves = [r["curve"] for r in runs if r["strategy"] == strategy]
        if not curves:
            continue
        n = min(len(c) for c in curves)
        mean = np.mean([c[:n] for c in curves], axis=0)
        ax.plot(np.arange(1, n + 1), mean, label=f"{strategy} (mean of {len(curves)} seeds)", color=f"C{i}")
        for c in curves:
            ax.plot(np.arange(1, len(c) + 1), c, color=f"C{i}", alpha=0.25, lw=0.8)
    ax.set_xlabel("candidates evaluated")
    ax.set_ylabel("best MnasNet reward so far")
    ax.set_title("Search with the supernet evaluator")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--supernet", help="a finished mobilenas supernet train run folder (required unless --merge)")
    parser.add_argument("--trials", type=int, default=300)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES), choices=STRATEGIES)
    parser.add_argument("--out", type=Path, default=RESULTS / "supernet_strategies.json")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto: where the supernet scores candidates")
    parser.add_argument("--work", type=Path, default=WORK, help="folder of the searches' run folders")
    parser.add_argument("--merge", type=Path, nargs="+", help="merge these per-seed JSON files into --out and stop")
    args = parser.parse_args()
    if args.merge:
        return merge(args.merge, args.out)
    if not args.supernet:
        parser.error("--supernet is required (a finished mobilenas supernet train run folder)")
    torch.set_num_threads(1)
    from latency.lazy import LazyPredictor

    data = load_dataset("mnist-rot-back-image", resolution=32, split_seed=0)
    space = trained_space(args.supernet) or "mnasnet"
    evaluator = CachedEvaluator(SupernetEvaluator.from_run(args.supernet, data, space=space, device=args.device))
    predictor = LazyPredictor(TABLE, on_drift="force")
    priced = make_space(space, resolution=32, num_classes=1000, in_channels=3)  # a sub-space of the table's
    target = target_ms(predictor.predict_ms, priced)
    runs = []
    for seed in args.seeds:
        for strategy in args.strategies:  # the JSON is rewritten after every search: a partial run is usable
            runs.append(run_one(strategy, seed, args.trials, evaluator, predictor.predict_ms, target, args.work))
            run = runs[-1]
            print(f"{run['strategy']:>9} seed {run['seed']}: best reward {run['best_reward']:.4f} (top-1 "
                  f"{run['best_top1']:.3f}, {run['best_latency_ms']:.3f} ms) after {run['trials']} trials", flush=True)
            write_result(args, runs, evaluator, target)


def summarise(runs: list[dict]) -> dict:
    """Per strategy: the median over seeds of the best reward and its top-1, and the seeds."""
    of = {s: [r for r in runs if r["strategy"] == s] for s in sorted({r["strategy"] for r in runs})}
    return {s: {"best_reward_median": float(np.median([r["best_reward"] for r in rs])),
                "best_top1_median": float(np.median([r["best_top1"] for r in rs])),
                "seeds": sorted(r["seed"] for r in rs)} for s, rs in of.items()}


def write_result(args: argparse.Namespace, runs: list[dict], evaluator: CachedEvaluator, target: float) -> None:
    summary = summarise(runs)
    n_eval = len(evaluator.cache)
    result = {"supernet": evaluator.evaluator.describe(), "data": "mnist-rot-back-image (validation split)",
              "latency_table": str(TABLE.relative_to(ROOT)), "priced_shape": "3x32x32, 1000 classes (table figures)",
              "reward": "mnasnet, w = -0.07", "target_ms": target, "trials": args.trials, "seeds": args.seeds,
              "summary": summary, "unique_specs_evaluated_this_session": n_eval,
              "eval_s_per_candidate": evaluator.eval_s / n_eval if n_eval else None,
              "runs": runs, "reach_random_best": reach_random_best(runs),
              "threads": 1, "device": args.device, "command": "python " + " ".join(sys.argv)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    plot(runs, args.out.with_suffix(".png"))


def merge(paths: list[Path], out: Path) -> None:
    """One result of several per-seed files (same supernet, table and target)."""
    parts = [json.loads(p.read_text()) for p in paths]
    targets = {round(p["target_ms"], 9) for p in parts}
    if len(targets) != 1:
        raise SystemExit(f"--merge: the files price against different targets {sorted(targets)}; run them alike")
    runs = [r for p in parts for r in p["runs"]]
    evals = sum(p["unique_specs_evaluated_this_session"] for p in parts)
    eval_s = sum((p["eval_s_per_candidate"] or 0) * p["unique_specs_evaluated_this_session"] for p in parts)
    merged = {**{k: v for k, v in parts[0].items() if k not in ("runs", "seeds", "command")},
              "seeds": sorted({r["seed"] for r in runs}), "runs": runs, "reach_random_best": reach_random_best(runs),
              "summary": summarise(runs),
              "unique_specs_evaluated_this_session": evals, "eval_s_per_candidate": eval_s / evals if evals else None,
              "merged_from": [p["command"] for p in parts], "command": "python " + " ".join(sys.argv)}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(merged, indent=1) + "\n")
    plot(runs, out.with_suffix(".png"))
    for strategy, row in merged["reach_random_best"]["summary"].items():
        print(f"{strategy}: reached random's best in {row['reached_in_seeds']}/{row['seeds']} seeds, "
              f"{row['within_300']} within 300; median candidates {row['candidates_to_reach_median']}")

if __name__ == "__main__":
    main()
