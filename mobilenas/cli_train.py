"""``mobilenas train``: train a spec on a data set, report test top-1, params, MAdds and ONNX
Runtime CPU latency, and keep everything in a run folder (``results/runs/<run-id>/``):
``manifest.json``, ``metrics.csv``, ``checkpoint.pt``, ``model.onnx`` and ``spec.json``.

Ctrl-C stops between two steps and saves the checkpoint; ``--resume RUN_DIR`` continues the
run exactly as if it had not been interrupted (same config, data split and thread count).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import signal
import sys
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

from mobilenas.spec_args import resolve_spec
from search_spaces.counting import spec_cost
from search_spaces.encoding import format_spec, spec_from_dict, spec_to_dict
from search_spaces.spec import ArchSpec

MANIFEST, METRICS, CHECKPOINT, ONNX, SPEC = "manifest.json", "metrics.csv", "checkpoint.pt", "model.onnx", "spec.json"
PACKAGES = ("mobilenas", "torch", "numpy", "pandas", "onnx", "onnxruntime", "scikit-learn", "mlxtend")
DEFAULT_OUT = Path("results/runs")


def register(subparsers: argparse._SubParsersAction) -> None:
    from training.config import DEVICES, OPTIMIZERS, SCHEDULES, TrainConfig

    defaults = TrainConfig()
    p = subparsers.add_parser(
        "train", help="train a spec on a data set; report test top-1, params, MAdds, ORT latency",
        description="Train SPEC on --data and write a run folder (manifest, per-epoch metrics, checkpoint, ONNX). "
                    "The spec's input channels and classes come from the data; its resolution from --resolution, "
                    "else 32 for mnist5k/digits/cifar10, else the data's native size.")
    p.add_argument("spec", nargs="?", metavar="SPEC", help="a registered name, a spec JSON file or a canonical spec string")
    p.add_argument("--data", default="mnist5k", help="mnist5k, digits, cifar10:DIR, imagefolder:DIR or npz:FILE (default mnist5k)")
    p.add_argument("--resolution", type=int, default=None, help="input side in pixels")
    p.add_argument("--width", type=float, default=1.0, help="width multiplier")
    p.add_argument("--epochs", type=int, default=defaults.epochs, help=f"epochs (default {defaults.epochs})")
    p.add_argument("--batch-size", type=int, default=defaults.batch_size)
    p.add_argument("--optimizer", choices=OPTIMIZERS, default=defaults.optimizer)
    p.add_argument("--lr", type=float, default=defaults.lr)
    p.add_argument("--schedule", choices=SCHEDULES, default=defaults.schedule)
    p.add_argument("--weight-decay", type=float, default=defaults.weight_decay)
    p.add_argument("--label-smoothing", type=float, default=defaults.label_smoothing)
    p.add_argument("--ema-decay", type=float, default=None, help="EMA of weights (paper: 0.9999); default off")
    p.add_argument("--no-augment", action="store_true", help="switch the data set's augmentation off")
    p.add_argument("--seed", type=int, default=0, help="training seed (init, shuffling, augmentation, dropout)")
    p.add_argument("--split-seed", type=int, default=0, help="seed of the train/val/test split")
    p.add_argument("--device", choices=DEVICES, default="auto")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads (results depend on it)")
    p.add_argument("--latency-repeats", type=int, default=100, help="timed ORT runs (median reported)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"folder for run folders (default {DEFAULT_OUT})")
    p.add_argument("--resume", type=Path, default=None, metavar="RUN_DIR", help="continue an interrupted run")
    p.add_argument("--json", action="store_true", help="print one JSON object with the results")
    p.set_defaults(handler=run_train)


def config_from_args(args: argparse.Namespace) -> "TrainConfig":
    from training.config import TrainConfig

    return TrainConfig(epochs=args.epochs, batch_size=args.batch_size, optimizer=args.optimizer, lr=args.lr,
                       schedule=args.schedule, weight_decay=args.weight_decay, label_smoothing=args.label_smoothing,
                       ema_decay=args.ema_decay, augment=not args.no_augment, threads=args.threads,
                       device=args.device, seed=args.seed)


def machine_info() -> dict[str, Any]:
    """Platform, CPU model and core count, recorded with every run."""
    from latency.fingerprint import cpu_model

    return {"platform": platform.platform(), "python": platform.python_version(), "cpu": cpu_model(),
            "cores": os.cpu_count(), "hostname": platform.node()}


def package_versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def new_run_dir(out: Path, spec_name: str, data_name: str, seed: int) -> Path:
    """A fresh ``out/<UTC time>-<spec>-<data>-s<seed>`` folder (suffixed if taken)."""
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out {str(out)!r} is a file; expected a folder for run folders")
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    slug = re.sub(r"[^A-Za-z0-9.]+", "-", f"{Path(spec_name).stem[:24]}-{data_name.split(':')[0]}").strip("-")
    base = out / f"{stamp}-{slug}-s{seed}"
    run_dir, n = base, 1
    while run_dir.exists():
        n += 1
        run_dir = base.with_name(f"{base.name}-{n}")
    run_dir.mkdir(parents=True)
    return run_dir


def write_json(path: Path, data: dict[str, Any]) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(temporary, path)


def _new_run(args: argparse.Namespace) -> tuple[Path, dict[str, Any]]:
    from training.datasets import default_resolution, load_dataset

    if args.spec is None:
        raise ValueError("SPEC is required unless --resume RUN_DIR is given")
    resolution = args.resolution if args.resolution is not None else default_resolution(args.data)
    data = load_dataset(args.data, resolution=resolution, split_seed=args.split_seed)
    spec = resolve_spec(args.spec, resolution=data.resolution, width=args.width, num_classes=data.num_classes,
                        in_channels=data.in_channels)
    config = config_from_args(args)
    run_dir = new_run_dir(args.out, args.spec, args.data, args.seed)
    manifest = {"command": ["mobilenas", *sys.argv[1:]], "status": "running", "spec_name": args.spec,
                "arch": format_spec(spec), "data": {"name": args.data, "split_seed": args.split_seed, **data.summary()},
                "config": config.to_dict(), "seed": config.seed, "latency": {"repeats": args.latency_repeats},
                "packages": package_versions(), "machine": machine_info()}
    write_json(run_dir / SPEC, spec_to_dict(spec))
    write_json(run_dir / MANIFEST, manifest)
    return run_dir, manifest


def _read_run(run_dir: Path) -> dict[str, Any]:
    for name in (MANIFEST, SPEC, CHECKPOINT):
        if not (run_dir / name).is_file():
            raise FileNotFoundError(f"--resume {str(run_dir)!r} lacks {name}; expected a run folder of mobilenas train")
    try:
        return json.loads((run_dir / MANIFEST).read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{str(run_dir / MANIFEST)!r} is malformed: {exc}") from exc


class StopFlag:
    """SIGINT sets the flag (the trainer stops after the current step); a second Ctrl-C aborts."""

    def __init__(self) -> None:
        self.stop = False
        self.previous: Any = None

    def __enter__(self) -> "StopFlag":
        self.previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        self.stop = True
        signal.signal(signal.SIGINT, self.previous)

    def __exit__(self, *exc: object) -> None:
        signal.signal(signal.SIGINT, self.previous)

    def __call__(self) -> bool:
        return self.stop


def progress_bar(total: int, initial: int, enabled: bool, metrics_path: Path) -> tuple[Callable, Callable]:
    """A tqdm bar on stderr (loss, train/val accuracy, ETA) fed by the trainer's progress
    callback; epoch rows are also appended to ``metrics.csv`` as they come."""
    from tqdm import tqdm

    bar = tqdm(total=total, initial=initial, unit="step", disable=None if enabled else True, file=sys.stderr,
               dynamic_ncols=True)
    state = {"val": "-"}

    def on_progress(event: Any) -> None:
        if event.phase == "step":
            bar.update(event.step - bar.n)
            bar.set_description(f"epoch {event.epoch}/{event.epochs}", refresh=False)
            bar.set_postfix_str(f"loss {event.loss:.3f} acc {event.top1:.3f} val {state['val']} lr {event.lr:.3g}")
        elif event.metrics is not None:
            state["val"] = f"{event.metrics['val_top1']:.3f}"
            _append_metrics(metrics_path, event.metrics)

    return on_progress, bar.close


def _append_metrics(path: Path, row: dict[str, float]) -> None:
    import pandas as pd

    pd.DataFrame([row]).to_csv(path, mode="a", header=not path.exists(), index=False)


def measure_latency_ms(onnx_path: Path, input_shape: tuple[int, int, int], repeats: int) -> float:
    """Median ONNX Runtime CPU latency at batch 1, 1 thread (latency.measurers)."""
    import numpy as np

    from latency.measurers import OrtSettings, measure_model_ms

    settings = OrtSettings(intra_op_threads=1, batch=1, warmup=20, repeats=repeats)
    return float(np.median(measure_model_ms(onnx_path, input_shape, settings)))


def _finish(run_dir: Path, manifest: dict[str, Any], spec: ArchSpec, data: Any, result: Any, repeats: int) -> dict:
    from search_spaces.onnx_export import export_module_onnx
    from training.inference import evaluate_model

    import torch

    model = result.model.to("cpu").eval()
    top1, loss = evaluate_model(model, data.x_test, data.y_test, device=torch.device("cpu"))
    result.metrics.to_csv(run_dir / METRICS, index=False)
    shape = (spec.in_channels, spec.resolution, spec.resolution)
    export_module_onnx(model, (1, *shape), run_dir / ONNX)
    cost = spec_cost(spec)
    summary = {"top1": top1, "test_loss": loss, "val_top1": result.val_top1, "latency_ms": None,
               "params": cost.params, "madds": cost.madds, "epochs": int(result.metrics["epoch"].max()),
               "train_s": float(result.metrics["train_s"].sum()), "images_per_s": result.images_per_s,
               "device": result.device, "arch": format_spec(spec), "run_dir": str(run_dir)}
    summary["latency_ms"] = measure_latency_ms(run_dir / ONNX, shape, repeats)
    manifest.update(status="completed", results=summary)
    write_json(run_dir / MANIFEST, manifest)
    return summary


def _train(run_dir: Path, manifest: dict[str, Any], resume: dict[str, Any] | None, show_bar: bool) -> dict | None:
    from training.config import TrainConfig
    from training.datasets import load_dataset
    from training.trainer import Trainer, TrainingDiverged

    data_info = manifest["data"]
    data = load_dataset(data_info["name"], resolution=data_info["resolution"], split_seed=data_info["split_seed"])
    spec = spec_from_dict(json.loads((run_dir / SPEC).read_text()))
    config = TrainConfig.from_dict(manifest["config"])
    with StopFlag() as stop:
        trainer = Trainer(spec, data, config, should_stop=stop, checkpoint_path=run_dir / CHECKPOINT)
        initial = 0 if resume is None else int(resume["step"])
        on_progress, close = progress_bar(trainer.total_steps, initial, show_bar, run_dir / METRICS)
        trainer.on_progress = on_progress
        try:
            result = trainer.fit(resume)
        except TrainingDiverged as exc:
            manifest.update(status="diverged", error=str(exc))
            write_json(run_dir / MANIFEST, manifest)
            raise ValueError(f"{exc} (run folder {run_dir})") from exc
        finally:
            close()
    if result.status == "interrupted":
        manifest.update(status="interrupted", step=result.steps)
        write_json(run_dir / MANIFEST, manifest)
        return None
    return _finish(run_dir, manifest, spec, data, result, manifest["latency"]["repeats"])


def run_train(args: argparse.Namespace) -> int:
    from training.checkpoint import load_checkpoint

    if args.resume is not None:
        run_dir, manifest = args.resume, _read_run(args.resume)
        resume = load_checkpoint(args.resume / CHECKPOINT)
    else:
        run_dir, manifest = _new_run(args)
        resume = None
    summary = _train(run_dir, manifest, resume, show_bar=not args.json)
    if summary is None:
        print(f"mobilenas train: interrupted; checkpoint saved, continue with: mobilenas train --resume {run_dir}",
              file=sys.stderr)
        return 130
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"test top-1 {summary['top1']:.4f} | params {summary['params']:,} | MAdds {summary['madds'] / 1e6:.2f} M | "
              f"ORT CPU latency {summary['latency_ms']:.3f} ms (batch 1, 1 thread, median) | run {run_dir}")
    return 0
