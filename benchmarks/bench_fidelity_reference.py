"""The supernet fidelity figures scored again against a stand-alone reference with more seeds,
without evaluating anything again.

Every evaluator's per-spec scores are read from the committed files (the supernets' and the
proxy's top-1 in ``supernet_fidelity_v3small_*.csv``, the fine-tuned rankers in
``supernet_finetune_rank_v3small_*.json``) and ranked against the mean of every stand-alone seed
``bench_standalone_runs.py train --seeds ...`` recorded, beside the reference's own agreement:
each seed against each other seed, and each seed against the mean of the others (how well one
more training run would track the reference the evaluators are held to).

    python benchmarks/bench_fidelity_reference.py --standalone-runs results/search/standalone_runs_v3small_cpu.csv \
        --out results/search/supernet_fidelity_v3small_reference.json
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy.stats import kendalltau, spearmanr  # noqa: E402

RESULTS = ROOT / "results" / "search"


def seeds_table(path: Path) -> pd.DataFrame:
    """Stand-alone top-1 of the sampled specs, one column per seed."""
    rows = pd.read_csv(path)
    rows = rows[(rows["job"] == "standalone") & rows["spec_id"].str.match(r"^m\d+$")]
    return rows.pivot(index="spec_id", columns="seed", values="val_top1").sort_index()


def evaluator_scores(spec_ids: pd.Index) -> dict[str, pd.Series]:
    """Each evaluator's top-1 per spec, from the committed fidelity files."""
    found: dict[str, pd.Series] = {}
    for csv in sorted(RESULTS.glob("supernet_fidelity_v3small_*.csv")):
        frame = pd.read_csv(csv).set_index("spec_id")
        found[f"supernet {csv.stem.removeprefix('supernet_fidelity_v3small_')}"] = frame["supernet_top1"]
        found.setdefault("2-epoch proxy", frame["proxy_top1"])
    for path in sorted(RESULTS.glob("supernet_finetune_rank_v3small_*.json")):
        rankers = json.loads(path.read_text())["rankers"]
        name = path.stem.removeprefix("supernet_finetune_rank_v3small_")
        for steps in (key for key in rankers if key != "supernet"):
            found[f"supernet {name} + {steps} fine-tuning steps"] = pd.Series(rankers[steps]["top1"], index=spec_ids)
    return {name: series.loc[spec_ids] for name, series in found.items()}


def tau(a, b) -> float:
    return float(kendalltau(np.asarray(a), np.asarray(b)).statistic)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--standalone-runs", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=RESULTS / "supernet_fidelity_v3small_reference.json")
    args = parser.parse_args()
    seeds = seeds_table(args.standalone_runs)
    if seeds.isna().any().any():
        raise SystemExit(f"{args.standalone_runs}: some stand-alone trainings are missing: finish the run first")
    mean, two = seeds.mean(axis=1), seeds[[0, 1]].mean(axis=1)
    columns = list(seeds.columns)
    result = {
        "n_specs": len(seeds), "seeds": [int(c) for c in columns],
        "seed_pairs_kendall": {f"{a}-{b}": tau(seeds[a], seeds[b]) for a, b in itertools.combinations(columns, 2)},
        "seed_vs_mean_of_others_kendall": {str(c): tau(seeds[c], seeds.drop(columns=c).mean(axis=1)) for c in columns},
        "evaluators": {name: {"kendall_all_seeds": tau(mean, s), "spearman_all_seeds": float(spearmanr(mean, s).statistic),
                              "kendall_seeds_0_1": tau(two, s)}
                       for name, s in evaluator_scores(seeds.index).items()},
        "command": "python " + " ".join(sys.argv),
    }
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"seeds {result['seeds']}: pairs {result['seed_pairs_kendall']}, one vs the others "
          f"{result['seed_vs_mean_of_others_kendall']}")
    for name, figures in result["evaluators"].items():
        print(f"{name:48s} Kendall {figures['kendall_all_seeds']:+.2f} (seeds 0-1: {figures['kendall_seeds_0_1']:+.2f})")


if __name__ == "__main__":
    main()
