"""Does the proxy rank architectures? Noise ceiling, proxy vs full, proxy cost (MnasNet section 4.2).

Over ``--specs`` architectures sampled from ``MnasNetSpace`` (1x32x32, 10 classes) plus
MobileNetV3-Small and Small x0.75 adapted to the data, on ``--data`` (default: the search's
data set, ``training.datasets.DEFAULT_SEARCH_DATA``):

  (a) noise ceiling: "full" training (the default recipe cut to ``--full-epochs``) with two
      seeds; Spearman between the two validation rankings;
  (b) each proxy budget (``--proxy``, the proxy recipe ``training.evaluate.PROXY_CONFIG``) vs the
      mean of the two full runs, Spearman;
  (c) proxy wall seconds per spec (median; proxy jobs hold /tmp/mobilenas-bench.lock);
  (d) full accuracy min/median/max and where MobileNetV3-Small and x0.75 fall; their test
      top-1 after the complete default recipe (``mobilenas train``, 50 epochs).

Jobs run ``--jobs`` at a time, each in its own process with ``--threads`` torch threads. Resumable:
one CSV row per finished job is appended to ``proxy_fidelity.csv``; a rerun skips finished jobs.

    .venv/bin/python benchmarks/bench_proxy_fidelity.py --specs 20 --jobs 2
"""
from __future__ import annotations

import argparse
import contextlib
import fcntl
import io
import json
import multiprocessing
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
import torch

from search_spaces.counting import spec_cost
from search_spaces.encoding import format_spec, parse_spec
from search_spaces.mnasnet_space import MnasNetSpace
from search_spaces.reference import reference_spec
from search_spaces.spec import ArchSpec
from storage.status import Status
from training.config import TrainConfig
from training.datasets import DEFAULT_SEARCH_DATA, load_dataset
from training.evaluate import DEFAULT_PROXY_BUDGET, PROXY_CONFIG, Budget, proxy_evaluate

OUT = Path("results/training")
RESOLUTION = 32
REFERENCES = {"mnv3-small": 1.0, "mnv3-small-x0.75": 0.75}
COLUMNS = ("spec_id", "job", "seed", "val_top1", "val_top1_stderr", "n_val", "test_top1", "wall_s", "steps", "status",
           "threads", "load1_start", "madds_m", "params", "arch")


def parse_budget(text: str) -> Budget:
    """``e2`` -> 2 epochs, ``s300`` -> 300 steps, ``e2n1000`` -> 2 epochs on 1000 training images."""
    head, _, subset = text.partition("n")
    try:
        count = int(head[1:])
        budget = Budget(epochs=count) if head[:1] == "e" else Budget(steps=count) if head[:1] == "s" else None
        if budget is None:
            raise ValueError
        return Budget(budget.epochs, budget.steps, int(subset)) if subset else budget
    except ValueError:
        raise ValueError(f"proxy budget {text!r} is not allowed; expected e<epochs> or s<steps>, "
                         "optionally n<train images> (e.g. e2, s300n1000)") from None


def budget_name(budget: Budget) -> str:
    head = f"e{budget.epochs}" if budget.epochs is not None else f"s{budget.steps}"
    return head + (f"n{budget.train_subset}" if budget.train_subset else "")


def specs(count: int, seed: int) -> dict[str, ArchSpec]:
    """``count`` sampled MnasNet-space specs (same as the older proxy benchmark) + the references."""
    space = MnasNetSpace(resolution=RESOLUTION, num_classes=10, in_channels=1)
    out = {f"s{i:02d}": space.sample(np.random.default_rng([seed, i])) for i in range(count)}
    for name, width in REFERENCES.items():
        out[name] = reference_spec("mobilenetv3-small", resolution=RESOLUTION, width=width, num_classes=10, in_channels=1)
    return out


@contextlib.contextmanager
def bench_lock(path: str | None) -> Iterator[None]:
    if path is None or path == "none":
        yield
        return
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def recipe_test_top1(data_name: str, width: float, threads: int) -> tuple[float, float, float]:
    """MobileNetV3-Small (``width``) through ``mobilenas train`` with the default recipe: test, val top-1, s."""
    from mobilenas.cli import main as cli_main

    with tempfile.TemporaryDirectory() as runs:
        argv = ["train", "mobilenetv3-small", "--data", data_name, "--width", str(width), "--threads", str(threads),
                "--device", "cpu", "--out", runs, "--json"]
        stdout, start = io.StringIO(), time.perf_counter()
        with contextlib.redirect_stdout(stdout):
            code = cli_main(argv)
        if code != 0:
            raise RuntimeError(f"mobilenas train failed with exit code {code}")
        result = json.loads(stdout.getvalue().strip().splitlines()[-1])
    return float(result["top1"]), float(result["val_top1"]), time.perf_counter() - start


def run_job(spec_id: str, arch: str, job: str, seed: int, args: dict) -> dict:
    """One training job in a fresh process: ``full``, ``proxy-<budget>`` or ``recipe``."""
    spec = parse_spec(arch)
    cost = spec_cost(spec)
    row = {"spec_id": spec_id, "job": job, "seed": seed, "threads": args["threads"], "load1_start": os.getloadavg()[0],
           "madds_m": cost.madds / 1e6, "params": cost.params, "arch": arch, "test_top1": float("nan")}
    if job == "recipe":
        test, val, wall = recipe_test_top1(args["data"], REFERENCES[spec_id], args["threads"])
        return {**row, "val_top1": val, "val_top1_stderr": float("nan"), "n_val": 0, "test_top1": test, "wall_s": wall,
                "steps": 0, "status": Status.FINISHED.value}
    data = load_dataset(args["data"], resolution=RESOLUTION)
    if job == "full":
        config = TrainConfig(batch_size=args["full_batch"], eval_every_epochs=0)
        budget, lock = Budget(epochs=args["full_epochs"]), None
    else:
        budget, config, lock = parse_budget(job.removeprefix("proxy-")), PROXY_CONFIG, args["lock"]
    with bench_lock(lock):
        result = proxy_evaluate(spec, data, budget, seed=seed, threads=args["threads"], device="cpu", config=config)
    return {**row, "val_top1": result.top1, "val_top1_stderr": result.top1_stderr, "n_val": result.n_val,
            "wall_s": result.wall_s, "steps": result.steps, "status": result.status.value}


def job_list(all_specs: dict[str, ArchSpec], proxies: list[str], full_seeds: list[int],
             recipe: bool) -> list[tuple[str, str, int]]:
    """Spec by spec: proxies, then the full runs; the references' complete recipe runs last."""
    jobs = []
    for spec_id in all_specs:
        jobs += [(spec_id, f"proxy-{p}", 0) for p in proxies] + [(spec_id, "full", s) for s in full_seeds]
    return jobs + ([(name, "recipe", 0) for name in REFERENCES] if recipe else [])


def append_row(path: Path, row: dict) -> None:
    frame = pd.DataFrame([row], columns=list(COLUMNS))
    frame.to_csv(path, mode="a", header=not path.exists(), index=False)


def finished(path: Path) -> set[tuple[str, str, int]]:
    if not path.exists():
        return set()
    rows = pd.read_csv(path)
    return {(r.spec_id, r.job, int(r.seed)) for r in rows.itertuples()}


def time_proxies(args: argparse.Namespace, path: Path) -> None:
    """Time the default proxy on the first ``--timing`` specs one at a time under the bench lock:
    wall seconds and process CPU seconds (with 1 thread, CPU seconds approximate an idle machine's
    wall time when other jobs share the cores). One row per spec, appended; resumable."""
    all_specs = specs(args.specs, args.seed)
    done = set(pd.read_csv(path)["spec_id"]) if path.exists() else set()
    data = load_dataset(args.data, resolution=RESOLUTION)
    for spec_id in list(all_specs)[:args.timing]:
        if spec_id in done:
            continue
        with bench_lock(args.lock):
            load1, cpu = os.getloadavg()[0], time.process_time()
            result = proxy_evaluate(all_specs[spec_id], data, DEFAULT_PROXY_BUDGET, seed=0, threads=args.threads,
                                    device="cpu")
            cpu_s = time.process_time() - cpu
        row = {"spec_id": spec_id, "budget": budget_name(DEFAULT_PROXY_BUDGET), "val_top1": result.top1,
               "wall_s": result.wall_s, "cpu_s": cpu_s, "load1_start": load1, "threads": args.threads}
        pd.DataFrame([row]).to_csv(path, mode="a", header=not path.exists(), index=False)
        print(json.dumps(row), flush=True)


def run_all(args: argparse.Namespace, csv: Path) -> None:
    all_specs = specs(args.specs, args.seed)
    done = finished(csv)
    todo = [j for j in job_list(all_specs, args.proxy, args.full_seeds, args.recipe) if j not in done
            and (not args.recipe_only or j[1] == "recipe")]
    print(f"{len(todo)} jobs to run ({len(done)} done) with {args.jobs} workers", flush=True)
    shared = {"data": args.data, "threads": args.threads, "full_epochs": args.full_epochs, "full_batch": args.full_batch,
              "lock": args.lock}
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=args.jobs, mp_context=context) as pool:
        futures = {pool.submit(run_job, s, format_spec(all_specs[s]), job, seed, shared): (s, job, seed)
                   for s, job, seed in todo}
        for future in as_completed(futures):
            row = future.result()
            append_row(csv, row)
            print(json.dumps({k: row[k] for k in ("spec_id", "job", "seed", "val_top1", "test_top1", "wall_s")}),
                  flush=True)


def spearman(a: pd.Series, b: pd.Series) -> float:
    ok = a.notna() & b.notna()
    return float(a[ok].rank().corr(b[ok].rank())) if ok.sum() > 2 else float("nan")


def per_spec(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per spec: full top-1 per seed and their mean, each proxy's top-1 and seconds."""
    train = rows[rows["job"] != "recipe"]
    top1 = train.assign(col=np.where(train["job"] == "full", "full_top1_seed" + train["seed"].astype(str),
                                     train["job"].str.removeprefix("proxy-") + "_top1"))
    table = top1.pivot_table(index="spec_id", columns="col", values="val_top1", aggfunc="first")
    proxies = train[train["job"] != "full"]
    seconds = proxies.assign(col=proxies["job"].str.removeprefix("proxy-") + "_s").pivot_table(
        index="spec_id", columns="col", values="wall_s", aggfunc="first")
    meta = train.groupby("spec_id")[["madds_m", "params"]].first()
    table = meta.join(table).join(seconds)
    seeds = [c for c in table.columns if c.startswith("full_top1_seed")]
    table["full_top1_mean"] = table[seeds].mean(axis=1, skipna=False)
    return table


def proxy_stats(table: pd.DataFrame, budgets: list[str]) -> dict[str, dict]:
    return {b: {"spearman_vs_full_mean": spearman(table[f"{b}_top1"], table["full_top1_mean"]),
                "median_s": float(table[f"{b}_s"].median()), "max_s": float(table[f"{b}_s"].max()),
                "top1_min": float(table[f"{b}_top1"].min()), "top1_max": float(table[f"{b}_top1"].max())}
            for b in budgets if f"{b}_top1" in table and f"{b}_s" in table}


def summarize(rows: pd.DataFrame, args: argparse.Namespace) -> dict:
    table = per_spec(rows)
    seeds = sorted(c for c in table.columns if c.startswith("full_top1_seed"))
    budgets = sorted(c.removesuffix("_top1") for c in table.columns if c.endswith("_top1") and not c.startswith("full"))
    stats = proxy_stats(table, budgets)
    default = budget_name(DEFAULT_PROXY_BUDGET)
    chosen = stats.get(default, {})
    full = table["full_top1_mean"]
    recipe = rows[rows["job"] == "recipe"].set_index("spec_id")["test_top1"]
    sampled = full[full.index.str.startswith("s")]
    return {
        "data": args.data, "n_specs": int(full.notna().sum()), "n_sampled_specs": int(sampled.notna().sum()),
        "noise_ceiling_spearman": spearman(table[seeds[0]], table[seeds[1]]) if len(seeds) == 2 else float("nan"),
        "proxy_budget": default, "proxy_vs_full_spearman": chosen.get("spearman_vs_full_mean", float("nan")),
        "proxy_median_s": chosen.get("median_s", float("nan")), "proxy_max_s": chosen.get("max_s", float("nan")),
        "proxies": stats,
        "full_top1_min": float(full.min()), "full_top1_median": float(full.median()), "full_top1_max": float(full.max()),
        "full_top1_seed_abs_diff_median": float((table[seeds[0]] - table[seeds[1]]).abs().median()) if len(seeds) == 2 else None,
        "val_top1_stderr_median": float(rows.loc[rows["job"] == "full", "val_top1_stderr"].median()),
        "n_val": int(rows.loc[rows["job"] == "full", "n_val"].max()),
        "mnv3_small_top1": float(full.get("mnv3-small", float("nan"))),
        "mnv3_small_x075_top1": float(full.get("mnv3-small-x0.75", float("nan"))),
        "mnv3_small_rank_of": _rank(full, "mnv3-small"), "mnv3_small_x075_rank_of": _rank(full, "mnv3-small-x0.75"),
        "mnv3_small_recipe_test_top1": float(recipe.get("mnv3-small", float("nan"))),
        "mnv3_small_x075_recipe_test_top1": float(recipe.get("mnv3-small-x0.75", float("nan"))),
        "full_budget": {"epochs": args.full_epochs, "batch_size": args.full_batch, "seeds": list(args.full_seeds),
                        "recipe": "TrainConfig defaults otherwise (SGD lr 0.1 nesterov, 1 warmup epoch, cosine, affine "
                                  "augmentation, label smoothing 0.1)"},
        "proxy_recipe": {k: PROXY_CONFIG.to_dict()[k] for k in ("batch_size", "optimizer", "lr", "schedule",
                                                                  "warmup_epochs", "augment")},
        "resolution": RESOLUTION, "threads": args.threads, "jobs_side_by_side": args.jobs,
        "full_s_median": float(rows.loc[rows["job"] == "full", "wall_s"].median()),
        "load1_median": float(rows["load1_start"].median()), "torch": torch.__version__,
        "machine": "shared 2-vCPU development VM (no GPU); other engineers' jobs ran on the same cores at times",
        "command": run_command(args),
    }


def run_command(args: argparse.Namespace) -> str:
    """The command that regenerates the committed figures (the run, not a --summarize-only call)."""
    return (f".venv/bin/python benchmarks/bench_proxy_fidelity.py --data {args.data} --specs {args.specs} "
            f"--proxy {' '.join(args.proxy)} --full-epochs {args.full_epochs} --full-batch {args.full_batch} "
            f"--jobs {args.jobs} --threads {args.threads} --lock {args.lock}" + ("" if args.recipe else " --no-recipe")
            + (f" --timing {args.timing}" if args.timing else ""))


def _rank(full: pd.Series, spec_id: str) -> str | None:
    if spec_id not in full or pd.isna(full[spec_id]):
        return None
    ranks = full.rank(ascending=False)
    return f"{int(ranks[spec_id])} of {int(full.notna().sum())}"


def plot(table: pd.DataFrame, summary: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seeds = sorted(c for c in table.columns if c.startswith("full_top1_seed"))
    proxy = f"{summary['proxy_budget']}_top1"
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.5))
    refs = table.index.isin(list(REFERENCES))
    for ax, (x, y, title) in zip(axes, [(seeds[0], seeds[1], f"noise ceiling: Spearman {summary['noise_ceiling_spearman']:.2f}"),
                                        (proxy, "full_top1_mean", f"proxy {summary['proxy_budget']} vs full: "
                                                                  f"Spearman {summary['proxy_vs_full_spearman']:.2f}")]):
        if x not in table or y not in table:
            continue
        ax.scatter(table.loc[~refs, x], table.loc[~refs, y], s=18, label="MnasNet-space samples")
        ax.scatter(table.loc[refs, x], table.loc[refs, y], s=40, marker="*", c="C3", label="MobileNetV3-Small (1.0, 0.75)")
        ax.set_xlabel(x.replace("_", " ") + " (val)")
        ax.set_ylabel(y.replace("_", " ") + " (val)")
        ax.set_title(title, fontsize=10)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"{summary['data']}: {summary['n_specs']} specs, full = {summary['full_budget']['epochs']} epochs, "
                 f"val n = {summary['n_val']}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(rows: pd.DataFrame, args: argparse.Namespace) -> dict:
    """``proxy_fidelity.json``, ``proxy_fidelity_specs.csv`` and ``proxy_fidelity.png`` next to the CSV."""
    summary = summarize(rows, args)
    timing_csv = args.out_dir / "proxy_fidelity_timing.csv"
    if timing_csv.exists():
        timing = pd.read_csv(timing_csv)
        summary["proxy_median_s"] = float(timing["wall_s"].median())
        summary["proxy_cpu_s_median"] = float(timing["cpu_s"].median())
        summary["proxy_timing"] = {"specs": int(len(timing)), "wall_s_median": float(timing["wall_s"].median()),
                                   "cpu_s_median": float(timing["cpu_s"].median()),
                                   "load1_median": float(timing["load1_start"].median()),
                                   "source": "proxy_fidelity_timing.csv (one job at a time, bench lock "
                                             + ("not taken: busy)" if args.lock == "none" else "held)")}
    table = per_spec(rows)
    table.to_csv(args.out_dir / "proxy_fidelity_specs.csv")
    plot(table, summary, args.out_dir / "proxy_fidelity.png")
    (args.out_dir / "proxy_fidelity.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=DEFAULT_SEARCH_DATA)
    parser.add_argument("--specs", type=int, default=20, help="sampled MnasNet-space specs (plus the two references)")
    parser.add_argument("--proxy", nargs="+", default=[budget_name(DEFAULT_PROXY_BUDGET)],
                        help="proxy budgets to compare: e<epochs> | s<steps>, optional n<train images>")
    parser.add_argument("--full-epochs", type=int, default=8)
    parser.add_argument("--full-batch", type=int, default=64, help="full runs: the default recipe at this batch size")
    parser.add_argument("--full-seeds", type=int, nargs=2, default=[0, 1])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0, help="spec sampling seed")
    parser.add_argument("--lock", default="/tmp/mobilenas-bench.lock",
                        help="held by proxy jobs while they are timed ('none': not taken; load1_start records the load)")
    parser.add_argument("--out-dir", type=Path, default=OUT)
    parser.add_argument("--recipe", action=argparse.BooleanOptionalAction, default=True,
                        help="also train the references with the complete default recipe (test top-1)")
    parser.add_argument("--recipe-only", action="store_true", help="run only the references' complete-recipe jobs")
    parser.add_argument("--timing", type=int, default=0,
                        help="afterwards, time the default proxy alone on the first N specs (bench lock held)")
    parser.add_argument("--summarize-only", action="store_true")
    args = parser.parse_args(argv)
    for text in args.proxy:
        parse_budget(text)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    csv = args.out_dir / "proxy_fidelity.csv"
    if not args.summarize_only:
        run_all(args, csv)
        if args.timing:
            time_proxies(args, args.out_dir / "proxy_fidelity_timing.csv")
    summary = write_report(pd.read_csv(csv), args)
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
