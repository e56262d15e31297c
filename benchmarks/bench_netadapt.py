"""NetAdapt vs a uniform width multiplier, ratio vs accuracy selection, latency honesty.

For each seed: train MobileNetV3-Small (adapted to the data) -> base; measure it end to end;
refine it with ``mobilenas netadapt`` to ``--fraction`` (70%) of its latency, once with
``--select ratio`` (MobileNetV3) and once with ``--select accuracy`` (NetAdapt); train from
scratch the uniform width multiplier whose measured latency is closest to the same target,
for the same total number of training epochs as the NetAdapt model's lineage (base epochs +
short-term steps along the kept path + long-term epochs, rounded up). Every step is a real
CLI run in its own folder under ``--work``; a killed benchmark resumes each step where it
stopped (``--resume``) and skips finished ones. Writes under ``results/netadapt/``:
``summary.json``, ``runs.csv``, ``honesty.csv``, ``comparison.png``, ``trajectories.png``,
``honesty.png``.

Run in the background, one benchmark at a time on the shared cores:
    flock /tmp/mobilenas-bench.lock .venv/bin/python benchmarks/bench_netadapt.py > results/netadapt/bench.log 2>&1 &
"""
from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from latency.lazy import LazyPredictor  # noqa: E402
from netadapt.floor import floor_spec  # noqa: E402
from netadapt.job import default_table_folder, open_predictor  # noqa: E402
from netadapt.report import chosen_rows, end_to_end_ms, plot_trajectories  # noqa: E402
from search_spaces.builder import build_model  # noqa: E402
from search_spaces.resolve import resolve_spec  # noqa: E402
from search_spaces.spec import ArchSpec, scale_width  # noqa: E402
from storage.statefiles import read_json, write_json  # noqa: E402
from training.datasets import load_dataset  # noqa: E402
from training.evaluate import FINETUNE_CONFIG  # noqa: E402

MOBILENAS = [str(ROOT / ".venv" / "bin" / "mobilenas")]
WIDTHS = tuple(float(round(w, 3)) for w in np.arange(0.25, 1.001, 0.05))


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="mnist5k")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--fraction", type=float, default=0.7, help="target as a fraction of the base's latency")
    p.add_argument("--base-epochs", type=int, default=2)
    p.add_argument("--short-steps", type=int, default=10)
    p.add_argument("--long-epochs", type=int, default=1)
    p.add_argument("--delta", type=float, default=0.05)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--work", type=Path, default=ROOT / "results/runs/bench-netadapt")
    p.add_argument("--results", type=Path, default=ROOT / "results/netadapt")
    return p.parse_args()


def run_step(name: str, args: list[str], work: Path, job: str) -> dict[str, Any]:
    """One CLI run in ``work/name`` (resumed if a previous attempt stopped); its JSON summary."""
    folder = work / name
    done = folder / "result.json"
    if done.is_file():
        return read_json(done)
    runs = sorted(p for p in folder.glob("*") if p.is_dir()) if folder.is_dir() else []
    command = MOBILENAS + ([job, "--resume", str(runs[-1]), "--json"] if runs else
                           [job, *args, "--out", str(folder), "--json"])
    tick = time.monotonic()
    print(f"[{time.strftime('%H:%M:%S')}] {name}: {' '.join(command[1:])}", flush=True)
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed ({proc.returncode}): {proc.stderr.strip().splitlines()[-1:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["step_wall_s"] = time.monotonic() - tick
    write_json(done, result)
    return result


def measured_ms(spec: ArchSpec, rounds: int = 3) -> float:
    """Median of ``rounds`` ORT medians (randomly initialised weights: latency does not depend on them)."""
    weights = build_model(spec).state_dict()
    return float(np.median([end_to_end_ms(spec, weights) for _ in range(rounds)]))


def width_latencies(base: ArchSpec, cache: Path) -> dict[float, float]:
    """Measured latency of each uniform width multiplier of ``base`` (cached in ``cache``)."""
    if cache.is_file():
        return {float(k): v for k, v in read_json(cache)["measured_ms"].items()}
    measured = {w: measured_ms(scale_width(base, w)) for w in WIDTHS}
    write_json(cache, {"measured_ms": {str(k): v for k, v in measured.items()}})
    return measured


def lineage_epochs(history: pd.DataFrame, opts: argparse.Namespace, train_images: int) -> int:
    """Epochs (passes over the training split) the NetAdapt model's weights saw along the kept
    path: base training, one short fine-tune per iteration, the long fine-tune; rounded up."""
    short_images = int(history["iteration"].max()) * opts.short_steps * FINETUNE_CONFIG.batch_size
    return opts.base_epochs + opts.long_epochs + math.ceil(short_images / train_images)


def seed_runs(seed: int, opts: argparse.Namespace, predictor: LazyPredictor, base_spec: ArchSpec,
              widths: dict[float, float]) -> list[dict]:
    work = opts.work / f"seed{seed}"
    base = run_step("base", ["mobilenetv3-small", "--data", opts.data, "--epochs", str(opts.base_epochs),
                             "--seed", str(seed), "--threads", "2"], work, "train")
    start_measured = measured_ms(base_spec)
    target_pred = opts.fraction * predictor.predict_ms(base_spec)
    rows = [{"seed": seed, "method": "base", "test_top1": base["top1"], "measured_ms": start_measured,
             "predicted_ms": predictor.predict_ms(base_spec), "epochs": opts.base_epochs}]
    for select in ("ratio", "accuracy"):
        result = run_step(f"netadapt-{select}", [
            "mobilenetv3-small", "--weights", base["run_dir"], "--target-ms", f"{target_pred:.6f}", "--data", opts.data,
            "--short-steps", str(opts.short_steps), "--long-epochs", str(opts.long_epochs), "--delta", str(opts.delta),
            "--select", select, "--workers", str(opts.workers), "--seed", str(seed), "--table", str(opts.table),
            "--force"], work, "netadapt")
        history = pd.read_csv(Path(result["run_dir"]) / "history.csv")
        rows.append({"seed": seed, "method": f"netadapt-{select}", "test_top1": result["final_top1"],
                     "measured_ms": result["measured_latency_ms"], "predicted_ms": result["predicted_latency_ms"],
                     "target_measured_ms": opts.fraction * start_measured, "target_ms": target_pred,
                     "iterations": result["iterations"],
                     "run_dir": result["run_dir"], "epochs": lineage_epochs(history, opts, opts.train_images)})
    width = min(widths, key=lambda w: abs(widths[w] - opts.fraction * start_measured))
    width_ms = widths[width]
    epochs = max(r.get("epochs", 0) for r in rows)
    wm = run_step(f"width-{width}-e{epochs}", ["mobilenetv3-small", "--width", str(width), "--data", opts.data,
                                     "--epochs", str(epochs), "--seed", str(seed), "--threads", "2"], work, "train")
    rows.append({"seed": seed, "method": f"width-multiplier", "width": width, "test_top1": wm["top1"],
                 "measured_ms": width_ms, "predicted_ms": predictor.predict_ms(scale_width(base_spec, width)),
                 "target_measured_ms": opts.fraction * start_measured, "epochs": epochs})
    return rows


def spread(values: pd.Series) -> dict[str, float]:
    return {"median": float(values.median()), "min": float(values.min()), "max": float(values.max()), "n": int(len(values))}


def summarize(frame: pd.DataFrame, opts: argparse.Namespace) -> dict[str, Any]:
    """Per method: test top-1 and measured latency (median, min, max over seeds); target hits."""
    methods = {}
    for method, group in frame.groupby("method", sort=False):
        entry = {"test_top1": spread(group["test_top1"]), "measured_ms": spread(group["measured_ms"])}
        if "target_measured_ms" in group and group["target_measured_ms"].notna().all():
            error = group["measured_ms"] / group["target_measured_ms"] - 1
            entry["measured_vs_target_pct"] = [round(100 * e, 2) for e in error]
            entry["within_5pct"] = int((error.abs() <= 0.05).sum())
        methods[method] = entry
    return {"data": opts.data, "seeds": opts.seeds, "fraction": opts.fraction, "base_epochs": opts.base_epochs,
            "short_steps": opts.short_steps, "long_epochs": opts.long_epochs, "delta": opts.delta,
            "workers": opts.workers, "methods": methods}


def honesty_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Predicted vs measured end-to-end latency of every kept model of every NetAdapt run."""
    parts = []
    for _, run in frame[frame["method"].str.startswith("netadapt")].iterrows():
        kept = chosen_rows(pd.read_csv(Path(run["run_dir"]) / "history.csv"))
        parts.append(pd.DataFrame({"seed": run["seed"], "method": run["method"], "iteration": kept["iteration"],
                                   "predicted_ms": kept["predicted_ms"], "measured_ms": kept["measured_ms"]}))
    out = pd.concat(parts, ignore_index=True)
    out["error_pct"] = 100 * (out["predicted_ms"] / out["measured_ms"] - 1)
    return out


def plot_comparison(frame: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for method, group in frame.groupby("method", sort=False):
        ax.scatter(group["measured_ms"], group["test_top1"], label=method, alpha=0.7)
        ax.errorbar(group["measured_ms"].median(), group["test_top1"].median(), fmt="x", color="black", ms=8)
    ax.set_xlabel("measured latency, ORT CPU 1 thread (ms)")
    ax.set_ylabel("test top-1")
    ax.set_title("NetAdapt vs uniform width multiplier (x: medians over seeds)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_honesty(rows: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 5))
    for method, group in rows.groupby("method"):
        ax.scatter(group["measured_ms"], group["predicted_ms"], label=method, alpha=0.7, s=14)
    low, high = rows[["predicted_ms", "measured_ms"]].min().min(), rows[["predicted_ms", "measured_ms"]].max().max()
    ax.plot([low, high], [low, high], "k--", lw=1, label="predicted = measured")
    ax.plot([low, high], [1.05 * low, 1.05 * high], "k:", lw=0.8)
    ax.plot([low, high], [0.95 * low, 0.95 * high], "k:", lw=0.8, label="+/-5%")
    ax.set_xlabel("measured end to end (ms)")
    ax.set_ylabel("predicted by the table (ms)")
    ax.set_title("Latency honesty: every kept model, every iteration")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_outputs(frame: pd.DataFrame, opts: argparse.Namespace) -> dict[str, Any]:
    opts.results.mkdir(parents=True, exist_ok=True)
    frame.to_csv(opts.results / "runs.csv", index=False)
    honesty = honesty_rows(frame)
    honesty.to_csv(opts.results / "honesty.csv", index=False)
    summary = summarize(frame, opts)
    summary["honesty"] = {"abs_error_pct_median": float(honesty["error_pct"].abs().median()),
                          "abs_error_pct_max": float(honesty["error_pct"].abs().max()),
                          "share_within_5pct": float((honesty["error_pct"].abs() <= 5).mean())}
    write_json(opts.results / "summary.json", summary)
    plot_comparison(frame, opts.results / "comparison.png")
    plot_honesty(honesty, opts.results / "honesty.png")
    first = frame[frame["method"].str.startswith("netadapt") & (frame["seed"] == opts.seeds[0])]
    histories = {row["method"]: pd.read_csv(Path(row["run_dir"]) / "history.csv") for _, row in first.iterrows()}
    plot_trajectories(histories, opts.results / "trajectories.png",
                      target_ms=float(first["target_ms"].iloc[0]), title=f"ratio vs accuracy selection, seed {opts.seeds[0]}")
    return summary


def main() -> int:
    opts = parse_args()
    tick = time.monotonic()
    data = load_dataset(opts.data, resolution=32, split_seed=0)
    opts.train_images = len(data.y_train)
    base_spec = resolve_spec("mobilenetv3-small", resolution=data.resolution, num_classes=data.num_classes,
                             in_channels=data.in_channels)
    opts.work.mkdir(parents=True, exist_ok=True)
    opts.table = default_table_folder(opts.work, base_spec)
    predictor = open_predictor(opts.table, base_spec, "force", print, create=True, calibrate=floor_spec(base_spec))
    widths = width_latencies(base_spec, opts.work / "widths.json")
    rows = []
    for seed in opts.seeds:
        rows += seed_runs(seed, opts, predictor, base_spec, widths)
    summary = write_outputs(pd.DataFrame(rows), opts)
    summary["wall_s"] = time.monotonic() - tick
    write_json(opts.results / "summary.json", summary)
    print(json.dumps(summary["methods"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
