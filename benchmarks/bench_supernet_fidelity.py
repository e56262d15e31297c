"""Ranking fidelity of the one-shot supernet evaluator against stand-alone training.

The question once-for-all, BigNAS and TuNAS answer before trusting a supernet: do sub-networks
with inherited weights rank architectures as training them from scratch does? For each spec the
stand-alone validation top-1 (mean of two seeds) is the reference; the supernet's top-1 (weights
inherited, BatchNorm recalibrated) and the 2-epoch proxy's top-1 are compared with it by Kendall's
tau and Spearman's rho (scipy.stats); the two stand-alone seeds against each other give the noise
ceiling (``kendall_ceiling``); each Kendall figure comes with its 95% bootstrap interval over the
specs (``kendall_*_ci95``). ``size_baselines`` ranks the specs by their multiply-adds, parameters
and activations alone: the free evaluators a supernet has to beat.

Specs: a supernet of ``mnasnet-mbconv`` (the space a supernet trains, see ``nas.supernet``) is
scored on the architectures sampled from that space whose stand-alone trainings
``bench_standalone_runs.py train`` recorded (30 epochs of the final training's recipe x seeds 0 and
1, and the 2-epoch proxy, seed 0; on CPU or, hours faster, on a GPU):

    python benchmarks/bench_standalone_runs.py train --epochs 30 --device cuda --workers 14 \
        --out results/search/standalone_runs_h200.csv
    python benchmarks/bench_supernet_fidelity.py --supernet results/runs/bench-supernet/<run> \
        --standalone-runs results/search/standalone_runs_h200.csv

For the full MnasNet space (a supernet trained before it was restricted to its MBConv part),
stand-alone figures: ``--standalone recorded`` reads the 20 specs sampled from the
MnasNet space in ``results/training/proxy_fidelity.csv`` (bench_proxy_fidelity.py: 5 epochs x 2
seeds of the default recipe at batch 64, and the 2-epoch proxy, measured on this machine kind).
``--standalone train --standalone-epochs 30 --specs 20`` trains them here instead (the full
version: 20 specs x 30 epochs x 2 seeds, about 10 CPU-hours at 1 thread).

writes ``results/search/supernet_fidelity.json`` (+ ``supernet_fidelity.csv``, one row per spec).
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
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from scipy.stats import bootstrap, kendalltau, spearmanr  # noqa: E402

from latency.keys import key_activations, spec_keys  # noqa: E402
from nas.supernet_eval import SupernetEvaluator, trained_space  # noqa: E402
from search_spaces.counting import spec_cost  # noqa: E402
from search_spaces.encoding import format_spec, parse_spec  # noqa: E402
from search_spaces.registry import make_space  # noqa: E402
from training.config import TrainConfig  # noqa: E402
from training.datasets import load_dataset  # noqa: E402
from training.evaluate import Budget, proxy_evaluate  # noqa: E402

RECORDED = ROOT / "results" / "training" / "proxy_fidelity.csv"
RESULTS = ROOT / "results" / "search"
DATA = "mnist-rot-back-image"
TIMING_NOTE = ("wall seconds on this machine at one thread, one job at a time: the supernet evaluations, then the 2-epoch "
               "proxy of the first --proxy-timing-specs specs; the stand-alone trainings' own seconds are not compared "
               "(they may have run on another device)")


def recorded_specs(n: int) -> pd.DataFrame:
    """spec_id, arch, standalone seeds 0/1 (5 epochs), proxy e2 top-1 and seconds, for the
    specs sampled from the space (the two MobileNetV3 references are not in it)."""
    frame = pd.read_csv(RECORDED)
    frame = frame[frame["spec_id"].str.match(r"^s\d+$")]
    full = frame[frame["job"] == "full"].pivot(index="spec_id", columns="seed", values="val_top1")
    proxy = frame[frame["job"] == "proxy-e2"].set_index("spec_id")
    table = pd.DataFrame({"arch": proxy["arch"], "standalone_seed0": full[0], "standalone_seed1": full[1],
                          "proxy_top1": proxy["val_top1"], "proxy_recorded_s": proxy["wall_s"]}).sort_index()
    return table.head(n)


def runs_table(path: Path, n: int) -> pd.DataFrame:
    """spec_id, arch, standalone seeds 0/1 and proxy top-1 of the sampled specs (``m00``...) from
    the rows ``bench_standalone_runs.py train`` wrote."""
    rows = pd.read_csv(path)
    rows = rows[rows["spec_id"].str.match(r"^m\d+$")]
    standalone = rows[rows["job"] == "standalone"].pivot(index="spec_id", columns="seed", values="val_top1")
    proxy = rows[rows["job"] == "proxy"].set_index("spec_id")
    epochs = rows.loc[rows["job"] == "standalone", "epochs"].unique()
    if len(epochs) != 1:
        raise SystemExit(f"{path}: stand-alone rows of several epoch counts {sorted(epochs)}")
    table = pd.DataFrame({"arch": proxy["arch"], "standalone_seed0": standalone[0], "standalone_seed1": standalone[1],
                          "proxy_top1": proxy["val_top1"]}).sort_index().head(n)
    table.attrs["epochs"] = int(epochs[0])
    table.attrs["device"] = ",".join(sorted(rows["device"].unique()))
    return table


def reference_rows(path: Path) -> dict:
    """Stand-alone (mean of the seeds) and proxy top-1 of the MobileNetV3 references in the rows."""
    rows = pd.read_csv(path)
    rows = rows[~rows["spec_id"].str.match(r"^m\d+$")]
    means = rows.groupby(["spec_id", "job"])["val_top1"].mean().unstack()
    return {sid: {"standalone_mean": float(r.get("standalone")), "proxy_top1": float(r.get("proxy"))}
            for sid, r in means.iterrows()}


def train_standalone(table: pd.DataFrame, data, epochs: int) -> pd.DataFrame:
    """Train every spec stand-alone for ``epochs`` with seeds 0 and 1 (the recorded recipe)."""
    recipe = TrainConfig(batch_size=64)
    for seed in (0, 1):
        table[f"standalone_seed{seed}"] = [
            proxy_evaluate(parse_spec(arch), data, Budget(epochs=epochs), seed=seed, threads=1, device="cpu",
                           config=recipe).top1 for arch in table["arch"]]
    return table


def time_proxy(table: pd.DataFrame, data, n: int) -> list[float]:
    """Wall seconds of the 2-epoch proxy (the search's default) for the first ``n`` specs, now."""
    seconds = []
    for arch in table["arch"].head(n):
        result = proxy_evaluate(parse_spec(arch), data, Budget(epochs=2), seed=0, threads=1, device="cpu")
        seconds.append(result.wall_s)
    return seconds


def correlations(reference: np.ndarray, values: np.ndarray) -> tuple[float, float]:
    return float(kendalltau(reference, values).statistic), float(spearmanr(reference, values).statistic)


def kendall_interval(reference: np.ndarray, values: np.ndarray, seed: int = 0) -> list[float]:
    """95% percentile-bootstrap interval of Kendall's tau over the specs (resampled in pairs,
    scipy.stats.bootstrap): how far 20 specs pin the figure down."""
    result = bootstrap((np.asarray(reference), np.asarray(values)), lambda a, b: kendalltau(a, b).statistic,
                       paired=True, vectorized=False, n_resamples=2000, method="percentile", random_state=seed)
    return [float(result.confidence_interval.low), float(result.confidence_interval.high)]


def size_scores(archs: pd.Series) -> dict[str, np.ndarray]:
    """Each spec's multiply-adds, parameters and activation elements (every layer's input and
    output maps), counted from the spec alone."""
    specs = [parse_spec(arch) for arch in archs]
    return {"madds": np.array([spec_cost(s).madds for s in specs], dtype=float),
            "params": np.array([spec_cost(s).params for s in specs], dtype=float),
            "activations": np.array([sum(map(key_activations, spec_keys(s))) for s in specs], dtype=float)}


def size_baselines(table: pd.DataFrame, reference: np.ndarray) -> dict:
    """Kendall (with its interval) and Spearman of the reference against each spec's size alone,
    without training: the free evaluators a supernet has to beat to add anything."""
    out = {}
    for name, values in size_scores(table["arch"]).items():
        kendall, spearman = correlations(reference, values)
        out[name] = {"kendall": kendall, "spearman": spearman, "kendall_ci95": kendall_interval(reference, values)}
    return out


def standalone_table(args: argparse.Namespace, space: str, data) -> tuple[pd.DataFrame, int, str]:
    """The specs with their stand-alone and proxy top-1, the stand-alone epochs and where they ran."""
    if args.standalone_runs:
        table = runs_table(args.standalone_runs, args.specs)
        return table, table.attrs["epochs"], f"trained by bench_standalone_runs.py on {table.attrs['device']}"
    if space != "mnasnet":
        raise SystemExit(f"a {space} supernet is scored against --standalone-runs (bench_standalone_runs.py train)")
    if args.standalone == "train":
        return train_standalone(recorded_specs(args.specs), data, args.standalone_epochs), args.standalone_epochs, \
            "trained here"
    return recorded_specs(args.specs), 5, "recorded by bench_proxy_fidelity.py"


def plot(table: pd.DataFrame, result: dict, out: Path) -> None:
    """Supernet and proxy top-1 against the stand-alone mean, each spec's two seeds as a bar."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    low = table[["standalone_seed0", "standalone_seed1"]].min(axis=1)
    high = table[["standalone_seed0", "standalone_seed1"]].max(axis=1)
    x = table["standalone_mean"]
    fig, axes = plt.subplots(1, 2, figsize=(8.4, 3.6), dpi=110)
    for ax, column, name in ((axes[0], "supernet_top1", "supernet"), (axes[1], "proxy_top1", "proxy")):
        ax.errorbar(100 * x, 100 * table[column], xerr=[100 * (x - low), 100 * (high - x)], fmt="o", ms=4,
                    elinewidth=0.8, capsize=2)
        ax.set_xlabel(f"stand-alone top-1 (%), {result['epochs_standalone']} epochs, mean of 2 seeds (bar: the seeds)")
        ax.set_ylabel(f"{name} top-1 (%)")
        ax.set_title(f"{name}: Kendall {result[f'kendall_{name}']:.2f}, Spearman {result[f'spearman_{name}']:.2f} "
                     f"(seed vs seed {result['kendall_ceiling']:.2f})", fontsize=8)
        ax.xaxis.label.set_fontsize(7)
    fig.suptitle(f"{result['space']}: {result['n_specs']} specs", fontsize=9)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--supernet", required=True, help="a finished mobilenas supernet train run folder")
    parser.add_argument("--specs", type=int, default=20)
    parser.add_argument("--standalone-runs", type=Path, help="rows of bench_standalone_runs.py train")
    parser.add_argument("--standalone", choices=("recorded", "train"), default="recorded",
                        help="full MnasNet space without --standalone-runs")
    parser.add_argument("--standalone-epochs", type=int, default=30, help="with --standalone train")
    parser.add_argument("--proxy-timing-specs", type=int, default=3, help="specs whose 2-epoch proxy is timed now")
    parser.add_argument("--out", type=Path, default=RESULTS / "supernet_fidelity.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = load_dataset(DATA, resolution=32, split_seed=0)
    space = trained_space(args.supernet) or "mnasnet"
    table, epochs, source = standalone_table(args, space, data)
    evaluator = SupernetEvaluator.from_run(args.supernet, data, space=space)
    results = [evaluator.evaluate(parse_spec(arch)) for arch in table["arch"]]
    table["supernet_top1"] = [r.top1 for r in results]
    table["supernet_s"] = [r.wall_s for r in results]
    reference = ((table["standalone_seed0"] + table["standalone_seed1"]) / 2).to_numpy()
    table["standalone_mean"] = reference
    k_super, s_super = correlations(reference, table["supernet_top1"].to_numpy())
    k_proxy, s_proxy = correlations(reference, table["proxy_top1"].to_numpy())
    k_ceiling, s_ceiling = correlations(table["standalone_seed0"].to_numpy(), table["standalone_seed1"].to_numpy())
    proxy_s = time_proxy(table, data, args.proxy_timing_specs)
    supernet_summary = json.loads((Path(args.supernet) / "summary.json").read_text())
    seed_gap = (table["standalone_seed0"] - table["standalone_seed1"]).abs()
    result = {
        "n_specs": len(table), "epochs_standalone": epochs, "seeds_standalone": 2,
        "kendall_supernet": k_super, "kendall_proxy": k_proxy, "spearman_supernet": s_super, "spearman_proxy": s_proxy,
        "kendall_ceiling": k_ceiling, "spearman_ceiling": s_ceiling,
        "kendall_supernet_ci95": kendall_interval(reference, table["supernet_top1"].to_numpy()),
        "kendall_proxy_ci95": kendall_interval(reference, table["proxy_top1"].to_numpy()),
        "kendall_ceiling_ci95": kendall_interval(table["standalone_seed0"].to_numpy(),
                                                 table["standalone_seed1"].to_numpy()),
        "standalone_seed_gap_median": float(seed_gap.median()),
        "size_baselines": size_baselines(table, reference),
        "supernet_train_s": supernet_summary["train_s"],
        "supernet_eval_s_per_candidate": float(np.median(table["supernet_s"])),
        "proxy_s_per_candidate": float(np.median(proxy_s)) if proxy_s else None,
        "proxy_s_per_candidate_recorded": float(table["proxy_recorded_s"].median()) if "proxy_recorded_s" in table else None,
        "space": space,
        "standalone_source": f"{len(table)} specs x {epochs} epochs x 2 seeds, {source}",
        "references": reference_rows(args.standalone_runs) if args.standalone_runs else {},
        "supernet": {**evaluator.describe(), "rule": supernet_summary["rule"], "epochs": supernet_summary["epochs"],
                     "val_top1_largest": supernet_summary["val_top1_largest"],
                     "val_top1_smallest": supernet_summary["val_top1_smallest"]},
        "supernet_top1_range": [float(table["supernet_top1"].min()), float(table["supernet_top1"].max())],
        "standalone_top1_range": [float(reference.min()), float(reference.max())],
        "proxy_timing_specs": args.proxy_timing_specs, "threads": 1, "data": f"{DATA} (validation split, 1,500 images)",
        "timing_note": TIMING_NOTE,
        "command": "python " + " ".join(sys.argv),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    table.drop(columns=["arch"]).to_csv(args.out.with_suffix(".csv"), float_format="%.4f")
    plot(table, result, args.out.with_suffix(".png"))
    print(json.dumps({k: result[k] for k in ("n_specs", "kendall_supernet", "kendall_proxy", "kendall_ceiling",
                                             "spearman_supernet", "spearman_proxy", "supernet_eval_s_per_candidate",
                                             "proxy_s_per_candidate")}))


if __name__ == "__main__":
    main()
