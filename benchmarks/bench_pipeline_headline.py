"""The headline: at the measured latency of MobileNetV3-Small (and of Small x0.75) adapted to the
default embedded task, does the pipeline's final model beat that reference, trained with the
same recipe and budget in the same run, in test accuracy at <= its measured latency? Median over
seeds, with spreads. Resumable: finished runs are kept in ``headline_runs.csv``; an unfinished
run folder is resumed.

    flock /tmp/mobilenas-bench.lock .venv/bin/python benchmarks/bench_pipeline_headline.py \
        --budget small --seeds 0 1 2 --widths 1.0 0.75
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from storage.runfolder import RunFolder, Status  # noqa: E402
from storage.statefiles import CsvLog, write_json  # noqa: E402
from storage.status import Status

COLUMNS = ("budget", "width", "seed", "run_dir", "final_top1", "final_top1_stderr", "final_latency_ms", "ref_top1",
           "ref_top1_stderr", "ref_latency_ms", "target_ms", "netadapt_rounds", "final_spec", "wall_s")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--budget", default="small")
    p.add_argument("--evaluator", default="proxy", choices=("proxy", "supernet"),
                   help="mobilenas run --evaluator; supernet writes headline_<budget>_supernet*.json and run/ under "
                        "results/reference/supernet/")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--widths", type=float, nargs="+", default=[1.0, 0.75])
    p.add_argument("--runs", type=Path, default=ROOT / "results/runs/headline")
    p.add_argument("--results", type=Path, default=ROOT / "results/reference")
    return p.parse_args()


def run_folder_for(runs: Path, budget: str, width: float, seed: int) -> Path:
    return runs / f"{budget}-w{width:g}-s{seed}"


def run_one(args: argparse.Namespace, width: float, seed: int) -> dict:
    """Run (or resume) one pipeline; returns the row for the ledger."""
    out = run_folder_for(args.runs, args.budget, width, seed)
    existing = sorted(p for p in out.glob("*/manifest.json"))
    command = [sys.executable, "-m", "mobilenas", "run", "--json"]
    if existing:
        folder = RunFolder.open(existing[0].parent, job="run")
        if folder.status is not Status.FINISHED:
            command += ["--resume", str(folder.path)]
    else:
        command += ["--budget", args.budget, "--target-like", "mobilenetv3-small", "--target-width", f"{width:g}",
                    "--seed", str(seed), "--out", str(out), "--evaluator", args.evaluator]
    if not existing or RunFolder.open(existing[0].parent, job="run").status is not Status.FINISHED:
        print(" ".join(command), flush=True)
        subprocess.run(command, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    folder = RunFolder.open(sorted(out.glob("*/manifest.json"))[0].parent, job="run")
    return row_of(folder, args.budget, width, seed)


def row_of(folder: RunFolder, budget: str, width: float, seed: int) -> dict:
    stages = folder.manifest["stages"]
    results = folder.manifest["results"]
    label = f"mobilenetv3-small-x{width:g}"
    ref = next(m for m in stages["references"]["result"]["models"] if m["name"] == label)
    measured = {m["name"]: m for m in stages["measure"]["result"]["models"]}
    wall = sum(float(s.get("elapsed_s", 0.0)) for s in stages.values())
    return {"budget": budget, "width": width, "seed": seed, "run_dir": str(folder.path),
            "final_top1": results["top1"], "final_top1_stderr": results["top1_stderr"],
            "final_latency_ms": measured["final"]["latency_ms"], "ref_top1": ref["top1"],
            "ref_top1_stderr": ref["top1_stderr"], "ref_latency_ms": measured[label]["latency_ms"],
            "target_ms": results["target_ms"],
            "netadapt_rounds": len(stages["netadapt"]["result"].get("latency_rounds", [])),
            "final_spec": results["final_spec"], "wall_s": round(wall, 1)}


def summarise(frame: pd.DataFrame) -> dict:
    out = {}
    for width, group in frame.groupby("width"):
        diff = group["final_top1"] - group["ref_top1"]
        ratio = group["final_latency_ms"] / group["ref_latency_ms"]
        out[f"mobilenetv3-small-x{width:g}"] = {
            "seeds": sorted(int(s) for s in group["seed"]),
            "final_top1_median": statistics.median(group["final_top1"]),
            "final_top1_range": [float(group["final_top1"].min()), float(group["final_top1"].max())],
            "ref_top1_median": statistics.median(group["ref_top1"]),
            "ref_top1_range": [float(group["ref_top1"].min()), float(group["ref_top1"].max())],
            "top1_diff_median": statistics.median(diff), "top1_diff_range": [float(diff.min()), float(diff.max())],
            "test_stderr_median": statistics.median(group["final_top1_stderr"]),
            "latency_ratio_median": statistics.median(ratio),
            "latency_ratio_range": [float(ratio.min()), float(ratio.max())],
            "runs_beating_ref": int(((diff > 0) & (ratio <= 1.0)).sum()),
            "enough_seeds": len(group) >= 3,
            "diff_exceeds_stderr": bool(statistics.median(diff) > statistics.median(group["final_top1_stderr"])),
            "headline_met": bool(len(group) >= 3 and statistics.median(diff) > 0 and statistics.median(ratio) <= 1.0)}
    return out


REFERENCE_FILES = ("report.md", "report.html", "accuracy_latency.png", "export/final.json", "export/final.md",
                   "export/final_timm.json")


def publish_reference(frame: pd.DataFrame, results: Path) -> Path | None:
    """Copy the first seed's report, final spec, paper table and plots (no weights) to
    ``results/reference/run/`` with its NetAdapt history and search trials."""
    if not len(frame):
        return None
    run = Path(frame.sort_values(["width", "seed"], ascending=[False, True]).iloc[0]["run_dir"])
    if not (run / "manifest.json").is_file():  # ledgered on another machine or cleaned: keep the published copy
        print(f"note: {run} is not on this machine; {results / 'run'} left as it is")
        return None
    target = results / "run"
    target.mkdir(parents=True, exist_ok=True)
    for name in REFERENCE_FILES:
        if (run / name).is_file():
            shutil.copyfile(run / name, target / Path(name).name)
    for job, files in (("netadapt", ("history.csv", "trajectory.png")), ("search", ("trials.csv", "pareto.png"))):
        for child in sorted(run.glob(f"{job}*/*/")):  # NetAdapt's last round wins
            for name in files:
                if (child / name).is_file():
                    shutil.copyfile(child / name, target / f"{job}_{name}")
    write_json(target / "manifest.json", json.loads((run / "manifest.json").read_text()))
    return target


def main() -> None:
    args = parse_args()
    if args.evaluator != "proxy":
        args.results, args.runs = args.results / args.evaluator, args.runs.with_name(f"{args.runs.name}-{args.evaluator}")
    args.results.mkdir(parents=True, exist_ok=True)
    ledger = CsvLog(args.results / f"headline_{args.budget}_runs.csv", COLUMNS)
    done = {(float(r.width), int(r.seed)) for r in ledger.read().itertuples()}
    for width in args.widths:
        for seed in args.seeds:
            if (width, seed) not in done:
                ledger.append([run_one(args, width, seed)])
    frame = ledger.read()
    summary = {"budget": args.budget, "data": "mnist-rot-back-image (default)", "summary": summarise(frame),
               "command": "flock /tmp/mobilenas-bench.lock .venv/bin/python benchmarks/bench_pipeline_headline.py "
                          f"--budget {args.budget} --seeds {' '.join(map(str, args.seeds))} "
                          f"--widths {' '.join(f'{w:g}' for w in args.widths)} --evaluator {args.evaluator}"}
    write_json(args.results / f"headline_{args.budget}.json", summary)
    publish_reference(frame, args.results)
    print(json.dumps(summary["summary"], indent=2))


if __name__ == "__main__":
    main()
