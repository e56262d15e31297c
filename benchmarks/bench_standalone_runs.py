"""Stand-alone trainings behind the supernet's fidelity and fine-tuning figures, on CPU or CUDA.

The reference a weight-sharing evaluator is judged against is each architecture trained alone with
the recipe the final model gets (``mobilenas run --budget medium`` trains it 30 epochs with
``TrainConfig()``'s defaults). That is hours of CPU, so this script runs the trainings as a plan of
independent jobs in a process pool (one thread each, several sharing a GPU when ``--device cuda``)
and appends one row per finished training to a CSV; a killed run resumes where it stopped (rows
already there are skipped). ``bench_supernet_fidelity.py --standalone-runs CSV`` turns the rows
into the fidelity figures and ``summarize-finetune`` into the inherited-weights comparison.

    python benchmarks/bench_standalone_runs.py export --supernet RUN --out DIR/supernet_weights.pt
    python benchmarks/bench_standalone_runs.py train --space mnasnet-mbconv --specs 20 --epochs 30 \\
        --finetune-specs 6 --weights DIR/supernet_weights.pt --device cuda --workers 14 --out runs.csv
    python benchmarks/bench_standalone_runs.py summarize-finetune --runs runs.csv

Jobs, in the order they start: ``standalone`` (every spec, ``--seeds``, 0 and 1 by default, ``--epochs``), MobileNetV3
references (Small and Large at x0.75 and x1.0, same), ``proxy`` (every spec, 2 epochs of the search's
proxy recipe, seed 0), then for the first ``--finetune-specs`` specs ``inherited`` (the supernet's
slice of the spec, fine-tuned at lr 0.01 without warm-up, or at the scratch recipe's lr 0.1 for
``--epochs``) against ``scratch`` at 2 and 8 epochs (scratch at ``--epochs`` is the standalone seed 0).

``export`` writes the supernet's weights in float16 (half the bytes, so the file travels to a GPU
machine within its transfer limit; the rounding, 5e-4 relative, is far below what fine-tuning moves).
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from multiprocessing import get_context
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from search_spaces.counting import count_madds  # noqa: E402
from search_spaces.encoding import format_spec, parse_spec  # noqa: E402
from search_spaces.reference import reference_spec  # noqa: E402
from search_spaces.registry import make_space  # noqa: E402
from training.config import TrainConfig  # noqa: E402
from training.datasets import load_dataset  # noqa: E402
from training.evaluate import PROXY_CONFIG, Budget, finetune, proxy_evaluate  # noqa: E402

DATA = "mnist-rot-back-image"
RESOLUTION = 32
FINAL_RECIPE = TrainConfig()
"""The final training's recipe (``pipeline.stages``: ``TrainConfig(epochs=final_epochs)``)."""
INHERITED_RECIPES = {"lr0.01": FINAL_RECIPE.replace(lr=0.01, warmup_epochs=0.0), "lr0.1": FINAL_RECIPE}
COLUMNS = ["job", "spec_id", "arch", "epochs", "seed", "recipe", "device", "val_top1", "wall_s", "steps"]
REFERENCES = [("mobilenetv3-small", 0.75), ("mobilenetv3-small", 1.0), ("mobilenetv3-large", 0.75),
              ("mobilenetv3-large", 1.0)]


def sampled_specs(space_name: str, n: int, seed: int, data) -> pd.DataFrame:
    """``n`` distinct specs drawn from the space at the data's shape (spec ids ``m00``...)."""
    space = make_space(space_name, resolution=data.resolution, num_classes=data.num_classes,
                       in_channels=data.in_channels)
    rng, archs = np.random.default_rng(seed), []
    while len(archs) < n:
        arch = format_spec(space.sample(rng))
        if arch not in archs:
            archs.append(arch)
    return pd.DataFrame({"arch": archs}, index=[f"m{i:02d}" for i in range(n)]).rename_axis("spec_id")


def spread_specs(space_name: str, n: int, seed: int, data, pool: int = 2000) -> pd.DataFrame:
    """``n`` specs spanning the space's cost: ``pool`` distinct specs drawn as ``sampled_specs`` does,
    then for each of ``n`` multiply-add counts evenly spaced from the pool's cheapest to its dearest
    the nearest spec not yet taken.

    A latency-weighted search compares models of every size, while specs drawn uniformly crowd the
    middle of the space (each is the sum of many independent choices)."""
    candidates = sampled_specs(space_name, pool, seed, data)["arch"].to_numpy()
    madds = np.array([count_madds(parse_spec(arch)) for arch in candidates], dtype=float)
    taken: list[int] = []
    for target in np.linspace(madds.min(), madds.max(), n):
        distance = np.abs(madds - target)
        distance[taken] = np.inf
        taken.append(int(np.argmin(distance)))
    return pd.DataFrame({"arch": candidates[taken]}, index=[f"m{i:02d}" for i in range(n)]).rename_axis("spec_id")


def reference_specs(data) -> pd.DataFrame:
    """MobileNetV3-Small/-Large at x0.75 and x1.0 at the data's shape (ids ``small-0.75``...)."""
    rows = {f"{name.split('-')[1]}-{width}": format_spec(reference_spec(
        name, resolution=data.resolution, width=width, num_classes=data.num_classes, in_channels=data.in_channels))
        for name, width in REFERENCES}
    return pd.DataFrame({"arch": rows}).rename_axis("spec_id")


def plan(specs: pd.DataFrame, references: pd.DataFrame, epochs: int, finetune_specs: int,
         device: str, seeds: tuple[int, ...] = (0, 1)) -> list[dict]:
    """Every job of the run, in start order (see the module docstring)."""
    jobs = []

    def add(job: str, table: pd.DataFrame, n_epochs: int, seed: int, recipe: str) -> None:
        jobs.extend({"job": job, "spec_id": sid, "arch": arch, "epochs": n_epochs, "seed": seed, "recipe": recipe,
                     "device": device} for sid, arch in table["arch"].items())

    both = pd.concat([specs, references])
    for seed in seeds:
        add("standalone", both, epochs, seed, "final")
    add("proxy", both, 2, 0, "proxy")
    head = specs.head(finetune_specs)
    for recipe in INHERITED_RECIPES:
        add("inherited", head, epochs, 0, recipe)
    for short in (2, 8):
        add("inherited", head, short, 0, "lr0.01")
        add("scratch", head, short, 0, "final")
    return jobs


def _key(row: dict) -> tuple:
    return (row["job"], row["spec_id"], int(row["epochs"]), int(row["seed"]), row["recipe"])


def _inherited_state(weights: str, arch: str) -> dict[str, torch.Tensor]:
    from nas.supernet import extract_subnet, make_supernet

    saved = torch.load(weights, map_location="cpu", weights_only=True)
    shape = saved["shape"]
    net = make_supernet(saved["space"], resolution=shape["resolution"], num_classes=shape["num_classes"],
                        in_channels=shape["in_channels"])
    net.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in saved["model"].items()})
    return extract_subnet(net, parse_spec(arch)).state_dict()


def run_job(job: dict, weights: str | None) -> dict:
    """Train one job (one thread) and return its row."""
    torch.set_num_threads(1)
    data = load_dataset(DATA, resolution=RESOLUTION, split_seed=0)
    spec, budget = parse_spec(job["arch"]), Budget(epochs=job["epochs"])
    common = {"seed": job["seed"], "threads": 1, "device": job["device"]}
    if job["job"] == "inherited":
        result, _ = finetune(spec, _inherited_state(weights, job["arch"]), data, budget,
                             config=INHERITED_RECIPES[job["recipe"]], **common)
    else:
        config = PROXY_CONFIG if job["recipe"] == "proxy" else FINAL_RECIPE
        result = proxy_evaluate(spec, data, budget, config=config, **common)
    return {**job, "val_top1": result.top1, "wall_s": result.wall_s, "steps": result.steps}


def append_row(path: Path, row: dict) -> None:
    new = not path.exists()
    with path.open("a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        if new:
            writer.writeheader()
        writer.writerow({k: row[k] for k in COLUMNS})


def done_keys(path: Path) -> set[tuple]:
    if not path.exists():
        return set()
    return {_key(row) for row in pd.read_csv(path).to_dict("records")}


def record_invocation(args: argparse.Namespace) -> None:
    """Append this invocation (config, versions, machine, GPU) to ``<out>.manifest.json``."""
    from storage.runfolder import machine_info, package_versions

    path = args.out.with_suffix(".manifest.json")
    manifest = json.loads(path.read_text()) if path.exists() else {"data": DATA, "resolution": RESOLUTION,
                                                                   "invocations": []}
    gpu = torch.cuda.get_device_name(0) if args.device.startswith("cuda") and torch.cuda.is_available() else None
    manifest["invocations"].append({
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "versions": {**package_versions(), "torch_runtime": torch.__version__}, "machine": machine_info(), "gpu": gpu,
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    path.write_text(json.dumps(manifest, indent=1) + "\n")


def train(args: argparse.Namespace) -> None:
    record_invocation(args)
    data = load_dataset(DATA, resolution=RESOLUTION, split_seed=0)
    specs = SAMPLERS[args.sample](args.space, args.specs, args.spec_seed, data)
    references = reference_specs(data) if args.references else reference_specs(data).head(0)
    jobs = plan(specs, references, args.epochs, args.finetune_specs if args.weights else 0, args.device,
                tuple(args.seeds))
    finished = done_keys(args.out)
    todo = [job for job in jobs if _key(job) not in finished]
    print(f"{len(jobs)} jobs, {len(jobs) - len(todo)} already done", flush=True)
    start, running = time.monotonic(), {}
    with ProcessPoolExecutor(args.workers, mp_context=get_context("spawn")) as pool:
        while todo or running:
            while todo and len(running) < args.workers and time.monotonic() - start < args.deadline_s:
                job = todo.pop(0)
                running[pool.submit(run_job, job, args.weights)] = job
            if not running:
                break
            finished_now, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished_now:
                job = running.pop(future)
                try:
                    row = future.result()
                except Exception as exc:  # a failed job is reported and the run goes on
                    print(f"FAILED {_key(job)}: {exc!r}", flush=True)
                    continue
                append_row(args.out, row)
                print(f"{time.monotonic() - start:7.1f}s {_key(row)} top1 {row['val_top1']:.4f} "
                      f"({row['wall_s']:.1f}s)", flush=True)
    print(f"left undone (deadline): {len(todo)}", flush=True)


def export(args: argparse.Namespace) -> None:
    from nas.supernet_eval import load_supernet_run, trained_space

    data = load_dataset(DATA, resolution=RESOLUTION, split_seed=0)
    space = trained_space(args.supernet)
    net, record = load_supernet_run(args.supernet, space=space, data=data)
    model = {k: v.half() if v.is_floating_point() else v for k, v in net.state_dict().items()}
    shape = {"resolution": data.resolution, "num_classes": data.num_classes, "in_channels": data.in_channels}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"space": space, "shape": shape, "source": record, "model": model}, args.out)
    print(f"{args.out}: {os.path.getsize(args.out) / 1e6:.1f} MB, space {space}, run {record['run_id']}")


def summarize_finetune(args: argparse.Namespace) -> None:
    """Inherited weights against scratch at equal epochs, per spec and as medians."""
    rows = pd.read_csv(args.runs)
    scratch = pd.concat([rows[rows["job"] == "scratch"],
                         rows[(rows["job"] == "standalone") & (rows["seed"] == 0)]])
    inherited = rows[rows["job"] == "inherited"]
    specs = sorted(set(inherited["spec_id"]))
    scratch = scratch[scratch["spec_id"].isin(specs)]
    table = pd.concat([
        scratch.assign(start="scratch", recipe="final"),
        inherited.assign(start="inherited"),
    ]).pivot_table(index=["start", "recipe", "epochs"], columns="spec_id", values="val_top1")
    table["median_top1"] = table.median(axis=1)
    standalone = rows[(rows["job"] == "standalone") & rows["spec_id"].isin(specs)]
    seeds = standalone.pivot(index="spec_id", columns="seed", values="val_top1")
    out = {"specs": specs, "data": f"{DATA} (validation split, 1,500 images)", "runs": str(args.runs),
           "noise_floor_seed_gap_median": float((seeds[0] - seeds[1]).abs().median()),
           "noise_floor_note": "median |seed 0 - seed 1| of the same specs' stand-alone trainings at the longest epochs",
           "median_top1": {f"{s}/{r}/{e}ep": float(v) for (s, r, e), v in table["median_top1"].items()},
           "command": "python " + " ".join(sys.argv)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    table.to_csv(args.out.with_suffix(".csv"), float_format="%.4f")
    print(table.round(4).to_string())


SAMPLERS = {"uniform": sampled_specs, "spread": spread_specs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    ex = sub.add_parser("export", help="the supernet's weights in float16, for a GPU machine")
    ex.add_argument("--supernet", required=True)
    ex.add_argument("--out", type=Path, required=True)
    tr = sub.add_parser("train", help="run the plan of stand-alone trainings")
    tr.add_argument("--space", default="mnasnet-mbconv")
    tr.add_argument("--specs", type=int, default=20)
    tr.add_argument("--spec-seed", type=int, default=0)
    tr.add_argument("--sample", choices=sorted(SAMPLERS), default="uniform",
                    help="uniform: specs as the space samples them; spread: evenly over the space's multiply-adds")
    tr.add_argument("--references", action=argparse.BooleanOptionalAction, default=True,
                    help="also train MobileNetV3-Small/-Large at x0.75 and x1.0")
    tr.add_argument("--epochs", type=int, default=30)
    tr.add_argument("--seeds", type=int, nargs="+", default=[0, 1],
                    help="seeds of the stand-alone trainings (a run resumed with more adds only theirs)")
    tr.add_argument("--finetune-specs", type=int, default=6)
    tr.add_argument("--weights", help="export's file; without it no inherited/scratch jobs run")
    tr.add_argument("--device", default="cpu")
    tr.add_argument("--workers", type=int, default=2)
    tr.add_argument("--deadline-s", type=float, default=float("inf"), help="start no job after this many seconds")
    tr.add_argument("--out", type=Path, required=True)
    su = sub.add_parser("summarize-finetune", help="inherited weights against scratch at equal epochs")
    su.add_argument("--runs", type=Path, required=True)
    su.add_argument("--out", type=Path, default=ROOT / "results" / "search" / "supernet_finetune.json")
    args = parser.parse_args()
    {"export": export, "train": train, "summarize-finetune": summarize_finetune}[args.command](args)


if __name__ == "__main__":
    main()
