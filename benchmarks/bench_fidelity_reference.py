"""The supernet fidelity figures scored again against a stand-alone reference with more seeds,
without evaluating anything again.

Every evaluator's per-spec scores are read from the committed files (the supernets' and the
proxy's top-1 in ``supernet_fidelity_v3small_*.csv``, the fine-tuned rankers in
``supernet_finetune_rank_v3small_*.json``) and ranked against the mean of every stand-alone seed
``bench_standalone_runs.py train --seeds ...`` recorded, beside the reference's own agreement:
each seed against each other seed, and each seed against the mean of the others (how well one
more training run would track the reference the evaluators are held to). The specs' sizes
(multiply-adds, parameters, activations) are ranked alike, as the free evaluators to beat.

Kendall's tau counts every pair of specs, also those whose stand-alone figures differ by less
than the seeds scatter. ``pairs_apart`` counts only the pairs whose stand-alone means lie more than
two standard errors of a difference apart (the error from the seeds' pooled spread) and reports the
share each evaluator orders as the reference does; the reference's own figure holds out one seed at a
time: pairs chosen on the mean of the other seeds, ordered by the held-out seed.

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

from bench_supernet_fidelity import size_scores  # noqa: E402

RESULTS = ROOT / "results" / "search"


def seeds_table(path: Path) -> tuple[pd.DataFrame, pd.Series]:
    """Stand-alone top-1 of the sampled specs, one column per seed, and each spec's arch."""
    rows = pd.read_csv(path)
    rows = rows[(rows["job"] == "standalone") & rows["spec_id"].str.match(r"^m\d+$")]
    archs = rows.groupby("spec_id")["arch"].first().sort_index()
    return rows.pivot(index="spec_id", columns="seed", values="val_top1").sort_index(), archs


def evaluator_scores(spec_ids: pd.Index, label: str) -> dict[str, pd.Series]:
    """Each evaluator's top-1 per spec, from the committed fidelity files of ``label``."""
    found: dict[str, pd.Series] = {}
    for csv in sorted(RESULTS.glob(f"supernet_fidelity_{label}_*.csv")):
        frame = pd.read_csv(csv).set_index("spec_id")
        found[f"supernet {csv.stem.removeprefix(f'supernet_fidelity_{label}_')}"] = frame["supernet_top1"]
        found.setdefault("2-epoch proxy", frame["proxy_top1"])
    for path in sorted(RESULTS.glob(f"supernet_finetune_rank_{label}_*.json")):
        rankers = json.loads(path.read_text())["rankers"]
        name = path.stem.removeprefix(f"supernet_finetune_rank_{label}_")
        for steps in (key for key in rankers if key != "supernet"):
            found[f"supernet {name} + {steps} fine-tuning steps"] = pd.Series(rankers[steps]["top1"], index=spec_ids)
    return {name: series.loc[spec_ids] for name, series in found.items()}


def tau(a, b) -> float:
    return float(kendalltau(np.asarray(a), np.asarray(b)).statistic)


def pairs_apart(seeds: pd.DataFrame) -> np.ndarray:
    """Pairs (i, j) of specs whose stand-alone means lie more than two standard errors of a
    difference apart, the error from the seeds' pooled variance."""
    mean = seeds.mean(axis=1).to_numpy()
    pooled_sd = float(np.sqrt(seeds.var(axis=1, ddof=1).mean()))
    margin = 2 * pooled_sd * np.sqrt(2 / seeds.shape[1])
    i, j = np.triu_indices(len(mean), k=1)
    keep = np.abs(mean[i] - mean[j]) > margin
    return np.stack([i[keep], j[keep]], axis=1)


def agreement(reference: np.ndarray, scores: np.ndarray, pairs: np.ndarray) -> float:
    """Share of ``pairs`` that ``scores`` order as ``reference`` does (a tie counts half)."""
    ref = np.sign(reference[pairs[:, 0]] - reference[pairs[:, 1]])
    got = np.sign(scores[pairs[:, 0]] - scores[pairs[:, 1]])
    return float(np.mean(np.where(got == 0, 0.5, got == ref)))


def held_out_agreement(seeds: pd.DataFrame) -> dict[str, dict]:
    """For each seed: pairs apart on the other seeds' mean, ordered by the held-out seed."""
    out = {}
    for held in seeds.columns:
        others = seeds.drop(columns=held)
        pairs = pairs_apart(others)
        out[str(held)] = {"pairs": len(pairs), "agreement": agreement(others.mean(axis=1).to_numpy(),
                                                                      seeds[held].to_numpy(), pairs)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--standalone-runs", type=Path, required=True)
    parser.add_argument("--label", default="v3small",
                        help="the evaluators' files: supernet_fidelity_<label>_*.csv, supernet_finetune_rank_<label>_*.json")
    parser.add_argument("--out", type=Path, default=RESULTS / "supernet_fidelity_v3small_reference.json")
    args = parser.parse_args()
    seeds, archs = seeds_table(args.standalone_runs)
    if seeds.isna().any().any():
        raise SystemExit(f"{args.standalone_runs}: some stand-alone trainings are missing: finish the run first")
    mean, two = seeds.mean(axis=1), seeds[[0, 1]].mean(axis=1)
    columns = list(seeds.columns)
    scores = {**evaluator_scores(seeds.index, args.label),
              **{f"size: {name}": pd.Series(values, index=seeds.index) for name, values in size_scores(archs).items()}}
    pairs = pairs_apart(seeds)
    result = {
        "n_specs": len(seeds), "seeds": [int(c) for c in columns],
        "seed_pairs_kendall": {f"{a}-{b}": tau(seeds[a], seeds[b]) for a, b in itertools.combinations(columns, 2)},
        "seed_vs_mean_of_others_kendall": {str(c): tau(seeds[c], seeds.drop(columns=c).mean(axis=1)) for c in columns},
        "pairs_apart": {"pairs": len(pairs), "of": len(seeds) * (len(seeds) - 1) // 2,
                        "held_out_seed": held_out_agreement(seeds)},
        "evaluators": {name: {"kendall_all_seeds": tau(mean, s), "spearman_all_seeds": float(spearmanr(mean, s).statistic),
                              "kendall_seeds_0_1": tau(two, s),
                              "agreement_pairs_apart": agreement(mean.to_numpy(), s.to_numpy(), pairs)}
                       for name, s in scores.items()},
        "command": "python " + " ".join(sys.argv),
    }
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"seeds {result['seeds']}: pairs {result['seed_pairs_kendall']}, one vs the others "
          f"{result['seed_vs_mean_of_others_kendall']}")
    print(f"pairs apart: {len(pairs)} of {result['pairs_apart']['of']}; a held-out seed orders them "
          f"{[round(v['agreement'], 2) for v in result['pairs_apart']['held_out_seed'].values()]}")
    for name, figures in result["evaluators"].items():
        print(f"{name:48s} Kendall {figures['kendall_all_seeds']:+.2f} (seeds 0-1: {figures['kendall_seeds_0_1']:+.2f})"
              f", pairs apart {figures['agreement_pairs_apart']:.2f}")


if __name__ == "__main__":
    main()
