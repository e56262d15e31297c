"""Training benchmarks (accuracy and throughput), figures written under results/training/.

  accuracy    MobileNetV3-Small adapted to the data (1x32x32, 10 classes) trained with the
              default recipe by ``mobilenas train``: test top-1, epochs, s/epoch, images/s.
  throughput  the Trainer's training images/s vs a minimal hand-written PyTorch loop on the
              same model, data, batch and threads (median of alternating repeats).

    flock /tmp/mobilenas-bench.lock .venv/bin/python benchmarks/bench_training.py accuracy --data mnist5k
    flock /tmp/mobilenas-bench.lock .venv/bin/python benchmarks/bench_training.py accuracy --data digits
    flock /tmp/mobilenas-bench.lock .venv/bin/python benchmarks/bench_training.py throughput
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import statistics
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch
from torch import nn

from mobilenas.cli import main as cli_main
from search_spaces.builder import build_model
from search_spaces.reference import reference_spec
from training.config import TrainConfig
from training.datasets import load_dataset
from training.trainer import Trainer

OUT = Path("results/training")
TARGETS = {"mnist5k": 0.98, "digits": 0.97}


def seed_suffix(args: argparse.Namespace) -> str:
    return "" if args.seed == 0 else f"_seed{args.seed}"


def bench_accuracy(args: argparse.Namespace) -> dict:
    """Train with ``mobilenas train`` (default recipe) and collect its figures."""
    with tempfile.TemporaryDirectory() as runs:
        argv = ["train", "mobilenetv3-small", "--data", args.data, "--threads", str(args.threads), "--device", "cpu",
                "--out", runs, "--json", "--seed", str(args.seed)] + (["--epochs", str(args.epochs)] if args.epochs else [])
        stdout = io.StringIO()
        with contextlib.redirect_stdout(stdout):
            code = cli_main(argv)
        if code != 0:
            raise SystemExit(f"mobilenas train failed with exit code {code}")
        result = json.loads(stdout.getvalue().strip().splitlines()[-1])
        metrics = pd.read_csv(Path(result["run_dir"]) / "metrics.csv")
        manifest = json.loads((Path(result["run_dir"]) / "manifest.json").read_text())
    metrics.to_csv(OUT / f"accuracy_{args.data}{seed_suffix(args)}_epochs.csv", index=False)
    summary = {"data": args.data, "spec": "mobilenetv3-small (1x32x32, 10 classes)", "test_top1": result["top1"],
               "target_top1": TARGETS.get(args.data), "met": result["top1"] >= TARGETS.get(args.data, 0.0),
               "val_top1": result["val_top1"], "seed": args.seed, "epochs": result["epochs"],
               "epoch_s_median": float(metrics["epoch_s"].median()), "train_s_total": result["train_s"],
               "images_per_s": result["images_per_s"], "latency_ms": result["latency_ms"], "params": result["params"],
               "madds": result["madds"], "threads": args.threads, "config": manifest["config"],
               "data_split": {k: manifest["data"][k] for k in ("train", "val", "test")},
               "machine": manifest["machine"], "packages": manifest["packages"]}
    return summary


def hand_loop(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, batch_size: int, lr: float, seed: int) -> float:
    """The minimal loop: shuffle, slice, forward, loss, backward, SGD step. Returns images/s."""
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=5e-5)
    criterion = nn.CrossEntropyLoss(label_smoothing=0.1)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    steps = len(y) // batch_size
    start = time.perf_counter()
    for i in range(steps):
        index = order[i * batch_size:(i + 1) * batch_size]
        loss = criterion(model(x[index]), y[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return steps * batch_size / (time.perf_counter() - start)


def bench_throughput(args: argparse.Namespace) -> dict:
    data = load_dataset("mnist5k", resolution=32)
    spec = reference_spec("mobilenetv3-small", resolution=32, num_classes=10, in_channels=1)
    config = TrainConfig(epochs=1, augment=False, threads=args.threads, device="cpu", eval_every_epochs=0)
    rows = []
    for repeat in range(args.repeats):
        result = Trainer(spec, data, config.replace(seed=repeat)).fit()
        previous = torch.get_num_threads()
        torch.set_num_threads(args.threads)
        torch.manual_seed(repeat)
        manual = hand_loop(build_model(spec).train(), data.x_train, data.y_train, batch_size=config.batch_size,
                           lr=config.lr, seed=repeat)
        torch.set_num_threads(previous)
        rows.append({"repeat": repeat, "trainer_images_per_s": result.images_per_s, "hand_loop_images_per_s": manual,
                     "ratio": result.images_per_s / manual})
        print(json.dumps(rows[-1]), flush=True)
    table = pd.DataFrame(rows)
    table.to_csv(OUT / "throughput.csv", index=False)
    ratio = float(table["ratio"].median())
    return {"spec": "mobilenetv3-small (1x32x32, 10 classes)", "data": "mnist5k train (3500)", "batch_size": 128,
            "threads": args.threads, "repeats": args.repeats, "ratio_median": ratio,
            "trainer_images_per_s_median": float(table["trainer_images_per_s"].median()),
            "hand_loop_images_per_s_median": float(table["hand_loop_images_per_s"].median()),
            "target": "ratio >= 0.90", "met": ratio >= 0.90,
            "note": "one epoch each, alternating; augmentation off; trainer figure is its own training-phase timing"}


def main() -> None:
    parser = argparse.ArgumentParser(description="training benchmarks: accuracy and throughput")
    sub = parser.add_subparsers(dest="bench", required=True)
    accuracy = sub.add_parser("accuracy")
    accuracy.add_argument("--data", choices=sorted(TARGETS), required=True)
    accuracy.add_argument("--epochs", type=int, default=None, help="default: the recipe's")
    accuracy.add_argument("--threads", type=int, default=2)
    accuracy.add_argument("--seed", type=int, default=0, help="training seed (the split stays split-seed 0)")
    throughput = sub.add_parser("throughput")
    throughput.add_argument("--repeats", type=int, default=5)
    throughput.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    if args.bench == "accuracy":
        summary, name = bench_accuracy(args), f"accuracy_{args.data}{seed_suffix(args)}.json"
    else:
        summary, name = bench_throughput(args), "throughput.json"
    (OUT / name).write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
