"""Benchmark: does the best architecture depend on the platform? (MnasNet section 1, MobileNetV3 section 4)

Runs ``mobilenas platforms compare`` (:mod:`pipeline.compare`) for three platforms of this
machine kind: ONNX Runtime CPU float with 1 thread, ONNX Runtime CPU int8 and torch eager CPU.
With ``--method netadapt`` one start model (MobileNetV3-Large, trained once on the embedded
data) is shrunk by NetAdapt to each platform's target, MobileNetV3-Small's latency on that
platform; with ``--method search`` (the default) one supernet is trained and each platform gets
``mobilenas run``'s search, NetAdapt and final training at that target
(:mod:`pipeline.compare_search`). Every found model is then timed on every platform, paired
with MobileNetV3-Small there. Figures: per platform,
whether its own model meets its target (paired ratio <= 1) and is on its accuracy-latency
Pareto front among the found models; every off-diagonal cell; how the architectures differ;
the cost per platform in seconds (table and NetAdapt, or each stage of its run). Writes
``matrix.json`` (a ``matrix`` key, one record per cell), ``matrix.csv``, ``matrix.png`` and
``architectures.md`` into ``results/platforms/search`` (``--method search``) or
``results/platforms`` (``--method netadapt``)::

    .venv/bin/python benchmarks/bench_platforms.py [--method search|netadapt] [--work DIR] [--platforms A B C] [--resume RUN_DIR]
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from pipeline.compare import CompareConfig
from pipeline.compare_job import compare_run
from pipeline.config import COMPARE_METHODS
from pipeline.platform_matrix import ARCHITECTURES_MD, MATRIX_CSV, MATRIX_JSON, MATRIX_PNG
from storage.runfolder import RunFolder
from storage.status import Status

OUT = Path("results/platforms")
PLATFORMS = ("ort-cpu-1t", "ort-cpu-int8", "torch-cpu")


def say(message: str) -> None:
    print(f"bench_platforms: {message}", file=sys.stderr, flush=True)


def open_run(args: argparse.Namespace) -> tuple[RunFolder, CompareConfig]:
    if args.resume is not None:
        folder = RunFolder.open(args.resume, job="platforms")
        return folder, CompareConfig.from_dict(folder.manifest["config"])
    space = {} if args.space is None else {"space": args.space}
    config = CompareConfig.for_names(list(args.platforms), seed=args.seed, method=args.method, **space)
    folder = RunFolder.create(args.work, job="platforms", slug="bench-platforms", seed=config.seed,
                              config=config.to_dict(), command=["python", *sys.argv])
    return folder, config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--platforms", nargs="+", default=list(PLATFORMS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--method", choices=COMPARE_METHODS, default="search")
    parser.add_argument("--space", default=None, help=f"with --method search (default {CompareConfig.space})")
    parser.add_argument("--out", type=Path, default=None,
                        help=f"where the figures are copied (default {OUT / 'search'} with --method search, else {OUT})")
    parser.add_argument("--work", type=Path, default=Path("results/runs/bench-platforms"))
    parser.add_argument("--resume", type=Path, default=None)
    args = parser.parse_args()
    folder, config = open_run(args)
    say(f"run folder {folder.path}")
    with folder.session() as stop:
        summary = compare_run(folder, config, say=say, stop=stop).run()
    if folder.status is not Status.FINISHED:
        say(f"stopped; resume with --resume {folder.path}")
        return
    args.out = args.out or (OUT / "search" if config.method == "search" else OUT)
    args.out.mkdir(parents=True, exist_ok=True)
    for name in (MATRIX_JSON, MATRIX_CSV, MATRIX_PNG, ARCHITECTURES_MD):
        shutil.copyfile(folder.path / name, args.out / name)
    document = json.loads((args.out / MATRIX_JSON).read_text())
    print(json.dumps({"verdicts": summary["verdicts"], "cost_s": document["cost_s"],
                      "cells": [{k: c[k] for k in ("found_for", "measured_on", "latency_ratio", "latency_ratio_low",
                                                   "latency_ratio_high", "top1", "on_front")} for c in document["matrix"]]},
                     indent=2))


if __name__ == "__main__":
    main()
