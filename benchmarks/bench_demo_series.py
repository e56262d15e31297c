"""`make demo` as a new user runs it: each seed from its own fresh clone of this repository's
HEAD, set-up included (`make` creates the venv and installs from the pip cache), the load
injector on for the whole of it, nothing reused between seeds (each run builds its own lazy
table). Prints one row per seed and writes them with the medians to ``--out``.

    .venv/bin/python benchmarks/bench_demo_series.py --seeds 0 1 2 3 4

Targets: every run passes and takes under 10 minutes with set-up; the final model beats
MobileNetV3-Small trained with the same recipe at no more than its paired latency (median of
the seeds); NetAdapt's round check within [0.95, 1.00] of the budget.
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from storage.runfolder import machine_info, package_versions

ROOT = Path(__file__).resolve().parents[1]


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--out", type=Path, default=ROOT / "results/reference/demo_series.json")
    p.add_argument("--keep", action="store_true", help="keep the clones (default: removed after each seed)")
    return p.parse_args()


def run_seed(seed: int, workdir: Path) -> dict:
    """Clone, then `make demo SEED=<seed>` under the injector; the row of figures."""
    clone = workdir / f"demo-s{seed}"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    commit = subprocess.run(["git", "-C", str(clone), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, check=True).stdout.strip()
    log = workdir / f"demo-s{seed}.log"
    tick = time.perf_counter()
    with log.open("w") as out:
        rc = subprocess.run([sys.executable, "-m", "latency.noise", "--", "make", "demo", f"SEED={seed}"], cwd=clone,
                            stdout=out, stderr=subprocess.STDOUT).returncode
    wall_s = time.perf_counter() - tick
    row = {"seed": seed, "rc": rc, "wall_s": round(wall_s, 1), "commit": commit, "log_tail": log.read_text()[-600:]}
    runs = sorted(clone.glob("results/runs/*-run-small-*/manifest.json"))
    if rc == 0 and runs:
        row.update(_figures(json.loads(runs[-1].read_text()), runs[-1].parent))
        row.pop("log_tail")
    return row


def _figures(manifest: dict, run_dir: Path) -> dict:
    stages = manifest["stages"]
    netadapt = stages["netadapt"]["result"]
    start = json.loads((run_dir / "netadapt" / "start_check.json").read_text())
    models = {m["name"]: m for m in stages["measure"]["result"]["models"]}
    small = next(name for name in models if name.startswith("mobilenetv3-small"))
    references = {m["name"]: m for m in stages["references"]["result"]["models"]}
    rounds = netadapt.get("latency_rounds", [])
    return {"start": start["ratio"], **_start_choice(run_dir / "netadapt"), "iterations": netadapt.get("iterations"),
            "checks": [round(r["ratio"], 4) for r in rounds], "check_low": [round(r["ratio_low"], 4) for r in rounds],
            "check_high": [round(r["ratio_high"], 4) for r in rounds],
            "final_top1": stages["final"]["result"]["top1"], "small_top1": references[small]["top1"],
            "final_vs_small_direct": models["final"]["latency_ms"] / models[small]["latency_ms"],
            "measure_final_ratio": [models["final"].get(k) for k in ("ratio", "ratio_low", "ratio_high")],
            "measure_small_ratio": models[small].get("ratio"),
            "stages": {name: round(s.get("elapsed_s", 0.0), 1) for name, s in stages.items()}}


def _start_choice(folder: Path) -> dict:
    """The rank of the measured start among the search's best trials and the pick's own ratio
    to the budget (nothing when the run measured only its pick)."""
    path = folder / "start_choice.json"
    if not path.is_file():
        return {}
    choice = json.loads(path.read_text())
    return {"start_rank": choice["rank"], "measured_starts": len(choice["candidates"]),
            "pick_ratio": round(choice["candidates"][0]["ratio"], 4)}


def summary(rows: list[dict]) -> dict:
    done = [r for r in rows if r["rc"] == 0 and "final_top1" in r]
    last = [r["checks"][-1] for r in done if r["checks"]]
    return {"passed": len(done), "runs": len(rows),
            "under_10_min": sum(r["wall_s"] < 600 for r in done),
            "median_wall_s": statistics.median(r["wall_s"] for r in rows) if rows else None,
            "max_wall_s": max((r["wall_s"] for r in rows), default=None),
            "median_final_top1": statistics.median(r["final_top1"] for r in done) if done else None,
            "median_small_top1": statistics.median(r["small_top1"] for r in done) if done else None,
            "beats_small": sum(r["final_top1"] > r["small_top1"] and r["final_vs_small_direct"] <= 1.0 for r in done),
            "round_check_in_band": sum(0.95 <= c <= 1.0 for c in last)}


def main() -> None:
    args = parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="mobilenas-demo-series-"))
    started = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M")
    rows = []
    for seed in args.seeds:
        row = run_seed(seed, workdir)
        rows.append(row)
        write_result(args, started, rows)  # after every seed: a killed series keeps the seeds it finished
        print(f"seed {seed}: rc {row['rc']}, {row['wall_s'] / 60:.1f} min with set-up"
              + (f", final {row['final_top1']:.1%} vs Small {row['small_top1']:.1%}, final/Small latency "
                 f"{row['final_vs_small_direct']:.3f}x, round checks {row['checks']}, stages {row['stages']}"
                 if "final_top1" in row else f"\n{row.get('log_tail', '')}"), flush=True)
        if not args.keep:
            shutil.rmtree(workdir / f"demo-s{seed}", ignore_errors=True)
    print(json.dumps(summary(rows)))


def write_result(args: argparse.Namespace, started: str, rows: list[dict]) -> None:
    """The series so far, with the machine and package versions, to ``args.out``."""
    result = {"what": "make demo SEED=N from a fresh clone each (set-up included), load injector on",
              "command": ".venv/bin/python benchmarks/bench_demo_series.py --seeds " + " ".join(map(str, args.seeds)),
              "date_utc": f"{started}-{datetime.now(timezone.utc).strftime('%H:%M')}",
              "machine": machine_info(), "packages": package_versions(), "summary": summary(rows), "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
