"""``mobilenas train``: train a spec on a data set, report test top-1, params, MAdds and ONNX
Runtime CPU latency, and keep everything in a run folder (``results/runs/<run-id>/``, a
:class:`storage.runfolder.RunFolder` of job ``train``): ``manifest.json``, ``metrics.csv``,
``checkpoint.pt``, ``model.onnx`` and ``spec.json``.

Every option is checked before any work starts (data loaded, spec adapted, device present) and
before the run folder exists. Ctrl-C or SIGTERM stops between two steps and saves the checkpoint;
``--resume RUN_DIR`` continues an interrupted, killed or failed run exactly as if it had not
stopped: with the recorded spec, data, config and latency settings, never redoing a finished
step. A finished run is not resumed, and options that would change a run are refused with it.
"""
from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from mobilenas.spec_args import resolve_spec
from search_spaces.counting import spec_cost
from search_spaces.encoding import format_spec, parse_spec, spec_to_dict
from search_spaces.spec import ArchSpec
from storage.runfolder import DEFAULT_OUT, MANIFEST, RunFolder, RunStatus
from storage.statefiles import CsvLog, StateFileError, check_fields, write_json

METRICS, CHECKPOINT, ONNX, SPEC = "metrics.csv", "checkpoint.pt", "model.onnx", "spec.json"
DEFAULT_DATA, DEFAULT_LATENCY_REPEATS = "mnist5k", 100
TRAIN_FIELDS = {"spec_name": str, "arch": str, "data": dict, "latency": dict}
DATA_FIELDS = {"name": str, "split_seed": int, "resolution": int}
RUN_OPTIONS = {"spec": "SPEC", "data": "--data", "resolution": "--resolution", "width": "--width",
               "epochs": "--epochs", "batch_size": "--batch-size", "optimizer": "--optimizer", "lr": "--lr",
               "schedule": "--schedule", "weight_decay": "--weight-decay", "label_smoothing": "--label-smoothing",
               "ema_decay": "--ema-decay", "no_augment": "--no-augment", "seed": "--seed",
               "split_seed": "--split-seed", "device": "--device", "threads": "--threads",
               "latency_repeats": "--latency-repeats", "out": "--out"}
"""Options that define a run: given with ``--resume`` they are refused (the run keeps its own)."""


def register(subparsers: argparse._SubParsersAction) -> None:
    from training.config import DEVICES, OPTIMIZERS, SCHEDULES, TrainConfig

    d = TrainConfig()
    p = subparsers.add_parser(
        "train", help="train a spec on a data set; report test top-1, params, MAdds, ORT latency",
        description="Train SPEC on --data and write a run folder (manifest, per-epoch metrics, checkpoint, ONNX). "
                    "The spec's input channels and classes come from the data; its resolution from --resolution, "
                    "else 32 for mnist5k/digits/cifar10, else the data's native size. Defaults are TrainConfig's.")
    p.add_argument("spec", nargs="?", metavar="SPEC", help="a registered name, a spec JSON file or a canonical spec string")
    p.add_argument("--data", default=None, help=f"mnist5k, digits, cifar10:DIR, imagefolder:DIR or npz:FILE "
                                                f"(default {DEFAULT_DATA})")
    p.add_argument("--resolution", type=int, default=None, help="input side in pixels")
    p.add_argument("--width", type=float, default=None, help="width multiplier (default 1.0)")
    p.add_argument("--epochs", type=int, default=None, help=f"epochs (default {d.epochs})")
    p.add_argument("--batch-size", type=int, default=None, help=f"(default {d.batch_size})")
    p.add_argument("--optimizer", choices=OPTIMIZERS, default=None, help=f"(default {d.optimizer})")
    p.add_argument("--lr", type=float, default=None, help=f"(default {d.lr})")
    p.add_argument("--schedule", choices=SCHEDULES, default=None, help=f"(default {d.schedule})")
    p.add_argument("--weight-decay", type=float, default=None, help=f"(default {d.weight_decay})")
    p.add_argument("--label-smoothing", type=float, default=None, help=f"(default {d.label_smoothing})")
    p.add_argument("--ema-decay", type=float, default=None, help="EMA of weights (paper: 0.9999); default off")
    p.add_argument("--no-augment", action="store_true", help="switch the data set's augmentation off")
    p.add_argument("--seed", type=int, default=None, help=f"training seed: init, shuffling, augmentation, dropout "
                                                          f"(default {d.seed})")
    p.add_argument("--split-seed", type=int, default=None, help="seed of the train/val/test split (default 0)")
    p.add_argument("--device", choices=DEVICES, default=None, help=f"(default {d.device})")
    p.add_argument("--threads", type=int, default=None, help=f"torch threads; results depend on it (default {d.threads})")
    p.add_argument("--latency-repeats", type=int, default=None,
                   help=f"timed ORT runs, median reported (default {DEFAULT_LATENCY_REPEATS})")
    p.add_argument("--out", type=Path, default=None, help=f"folder for run folders (default {DEFAULT_OUT})")
    p.add_argument("--resume", type=Path, default=None, metavar="RUN_DIR",
                   help="continue an interrupted, killed or failed run with its recorded settings")
    p.add_argument("--json", action="store_true", help="print one JSON object with the results")
    p.set_defaults(handler=run_train)


def config_from_args(args: argparse.Namespace) -> "TrainConfig":
    """TrainConfig's defaults overridden by the options given (validated by TrainConfig)."""
    from training.config import TrainConfig

    given = {"epochs": args.epochs, "batch_size": args.batch_size, "optimizer": args.optimizer, "lr": args.lr,
             "schedule": args.schedule, "weight_decay": args.weight_decay, "label_smoothing": args.label_smoothing,
             "ema_decay": args.ema_decay, "threads": args.threads, "device": args.device, "seed": args.seed}
    changes = {k: v for k, v in given.items() if v is not None}
    if args.no_augment:
        changes["augment"] = False
    return TrainConfig(**changes)


@dataclass
class TrainJob:
    """Everything a run needs, resolved and checked before the run (and its folder) starts."""

    run: RunFolder
    spec: ArchSpec
    data: Any
    config: Any
    repeats: int
    checkpoint: dict[str, Any] | None
    resumed_from: RunStatus | None = None
    """The status a resumed run had (None for a new run)."""


def _check_run_options(args: argparse.Namespace) -> int:
    """Options TrainConfig does not check; returns the latency repeats."""
    repeats = DEFAULT_LATENCY_REPEATS if args.latency_repeats is None else args.latency_repeats
    if repeats < 1:
        raise ValueError(f"--latency-repeats = {repeats} is not allowed; expected an integer >= 1")
    if args.width is not None and not (math.isfinite(args.width) and args.width > 0):
        raise ValueError(f"--width = {args.width} is not allowed; expected a finite number > 0")
    if args.resolution is not None and args.resolution < 1:
        raise ValueError(f"--resolution = {args.resolution} is not allowed; expected an integer >= 1")
    if args.split_seed is not None and args.split_seed < 0:
        raise ValueError(f"--split-seed = {args.split_seed} is not allowed; expected an integer >= 0")
    out = DEFAULT_OUT if args.out is None else args.out
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out {str(out)!r} is a file; expected a folder for run folders")
    return repeats


def _machine() -> dict[str, Any]:
    from latency.fingerprint import cpu_model
    from storage.runfolder import machine_info

    return {**machine_info(), "cpu": cpu_model()}


def prepare_new(args: argparse.Namespace) -> TrainJob:
    """Check every option, load the data, adapt the spec; only then create the run folder."""
    from training.datasets import default_resolution, load_dataset
    from training.runtime import resolve_device
    from training.trainer import Trainer

    if args.spec is None:
        raise ValueError("SPEC is required unless --resume RUN_DIR is given")
    repeats = _check_run_options(args)
    config = config_from_args(args)
    resolve_device(config.device)
    name, split_seed = args.data or DEFAULT_DATA, args.split_seed or 0
    resolution = args.resolution if args.resolution is not None else default_resolution(name)
    data = load_dataset(name, resolution=resolution, split_seed=split_seed)
    spec = resolve_spec(args.spec, resolution=data.resolution, width=1.0 if args.width is None else args.width,
                        num_classes=data.num_classes, in_channels=data.in_channels)
    Trainer(spec, data, config)  # spec vs data checked now, not after the folder exists
    slug = f"{Path(args.spec).stem[:24] if '|' not in args.spec else 'spec'}-{name.split(':')[0]}"
    run = RunFolder.create(DEFAULT_OUT if args.out is None else args.out, job="train", slug=slug, seed=config.seed,
                           config=config.to_dict(),
                           extra={"spec_name": args.spec, "arch": format_spec(spec), "machine": _machine(),
                                  "data": {"name": name, "split_seed": split_seed, **data.summary()},
                                  "latency": {"repeats": repeats}})
    write_json(run.file(SPEC), spec_to_dict(spec))
    return TrainJob(run, spec, data, config, repeats, None)


def _refuse_run_options(args: argparse.Namespace) -> None:
    given = [flag for dest, flag in RUN_OPTIONS.items() if getattr(args, dest) not in (None, False)]
    if given:
        raise ValueError(f"--resume continues a run with its recorded spec, data, config and settings; "
                         f"{', '.join(given)} cannot be changed (start a new run instead)")


def _recorded(run: RunFolder) -> tuple[ArchSpec, Any, int]:
    """The spec, TrainConfig and latency repeats recorded in the manifest, each checked."""
    from training.config import TrainConfig

    where = str(run.file(MANIFEST))
    check_fields(run.manifest["data"], DATA_FIELDS, f"{where}: data")
    check_fields(run.manifest["latency"], {"repeats": int}, f"{where}: latency")
    repeats = run.manifest["latency"]["repeats"]
    if repeats < 1:
        raise StateFileError(f"{where}: latency.repeats = {repeats} is not allowed; expected an integer >= 1")
    try:
        config = TrainConfig.from_dict(run.manifest["config"])
    except (TypeError, ValueError) as exc:
        raise StateFileError(f"{where}: config: {exc}") from None
    try:
        spec = parse_spec(run.manifest["arch"])
    except ValueError as exc:
        raise StateFileError(f"{where}: arch: {exc}") from None
    return spec, config, repeats


def _checkpoint(run: RunFolder, spec: ArchSpec, config: Any) -> dict[str, Any] | None:
    """The run's checkpoint (None before the first one was written), checked against the manifest."""
    from training.checkpoint import load_checkpoint

    path = run.file(CHECKPOINT)
    if not path.exists():
        return None
    checkpoint = load_checkpoint(path)
    if checkpoint["spec"] != spec_to_dict(spec) or checkpoint["config"] != config.to_dict():
        field = "spec" if checkpoint["spec"] != spec_to_dict(spec) else "config"
        raise StateFileError(f"{path}: its {field} differs from {run.file(MANIFEST)}; the checkpoint belongs to "
                             "another run")
    return checkpoint


def prepare_resume(args: argparse.Namespace) -> TrainJob:
    """Open the run, check it can resume and that its manifest, spec and checkpoint agree."""
    from training.datasets import load_dataset
    from training.runtime import resolve_device

    _refuse_run_options(args)
    run = RunFolder.open(args.resume, job="train", fields=TRAIN_FIELDS)
    run.check_resumable()
    spec, config, repeats = _recorded(run)
    resolve_device(config.device)
    info = run.manifest["data"]
    data = load_dataset(info["name"], resolution=info["resolution"], split_seed=info["split_seed"])
    checkpoint = _checkpoint(run, spec, config)
    if checkpoint is not None and checkpoint.get("data") != data.summary():
        raise StateFileError(f"{run.file(CHECKPOINT)}: written for data {checkpoint.get('data')}, but "
                             f"{info['name']!r} now loads as {data.summary()}")
    if not run.file(SPEC).is_file():
        write_json(run.file(SPEC), spec_to_dict(spec))
    return TrainJob(run, spec, data, config, repeats, checkpoint, resumed_from=run.status)


def resume_note(job: TrainJob, total_steps: int) -> str:
    """What ``--resume`` will and will not do, for stderr."""
    step = 0 if job.checkpoint is None else int(job.checkpoint["step"])
    if job.checkpoint is None:
        plan = "no checkpoint was written yet, so training starts at step 0"
    elif step >= total_steps:
        plan = f"training is complete ({step}/{total_steps} steps); only evaluation, ONNX export and latency run"
    else:
        plan = f"training continues at step {step}/{total_steps}; finished steps and epochs are not redone"
    return (f"mobilenas train: resuming {job.run.path} (was {job.resumed_from.value}): {plan}; spec, data, config, seed "
            f"and latency repeats ({job.repeats}) are the recorded ones")


def progress_bar(total: int, initial: int, enabled: bool, metrics: CsvLog) -> tuple[Callable, Callable]:
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
            metrics.append([event.metrics])

    return on_progress, bar.close


def measure_latency(onnx_path: Path, spec: "ArchSpec", repeats: int) -> dict[str, float]:
    """ONNX Runtime CPU latency at batch 1, 1 thread, paired run by run with MobileNetV3-Small
    at the same input shape (latency.endtoend): ``latency_ms`` (the ratio x the reference's
    median meanwhile) and ``latency_vs_reference`` (the ratio, steady on a noisy machine)."""
    from latency.endtoend import default_reference, measure_specs
    from latency.measurers import OrtMeasurer, OrtSettings

    measurer = OrtMeasurer(OrtSettings(intra_op_threads=1, batch=1, warmup=20, repeats=repeats))
    paired = measure_specs(measurer, [spec], default_reference(spec), pairs=max(20, repeats // 2), passes=2,
                           models=[onnx_path])[0]
    return {"latency_ms": paired.latency_ms, "latency_vs_reference": paired.ratio}


def _finish(job: TrainJob, result: Any, metrics: CsvLog) -> dict[str, Any]:
    """Test top-1, ONNX export, params/MAdds and latency of the trained model."""
    import torch

    from search_spaces.onnx_export import export_module_onnx
    from training.inference import evaluate_model

    spec, run = job.spec, job.run
    model = result.model.to("cpu").eval()
    top1, loss = evaluate_model(model, job.data.x_test, job.data.y_test, device=torch.device("cpu"))
    metrics.rewrite(result.metrics.to_dict("records"))
    shape = (spec.in_channels, spec.resolution, spec.resolution)
    export_module_onnx(model, (1, *shape), run.file(ONNX))
    cost = spec_cost(spec)
    return {"top1": top1, "test_loss": loss, "val_top1": result.val_top1,
            **measure_latency(run.file(ONNX), spec, job.repeats), "params": cost.params,
            "madds": cost.madds, "epochs": int(result.metrics["epoch"].max()),
            "train_s": float(result.metrics["train_s"].sum()), "images_per_s": result.images_per_s,
            "device": result.device, "arch": format_spec(spec), "run_dir": str(run.path)}


def execute(job: TrainJob, show_bar: bool, say: Callable[[str], None]) -> dict[str, Any] | None:
    """Train inside the run's session; the summary, or None when stopped (checkpoint saved)."""
    from training.trainer import METRIC_COLUMNS, Trainer, TrainingDiverged

    run = job.run
    with run.session() as stop:
        trainer = Trainer(job.spec, job.data, job.config, should_stop=stop, checkpoint_path=run.file(CHECKPOINT))
        if job.resumed_from is not None:
            say(resume_note(job, trainer.total_steps))
        metrics = CsvLog(run.file(METRICS), METRIC_COLUMNS)
        metrics.rewrite([] if job.checkpoint is None else job.checkpoint["metrics"])  # exactly the saved epochs
        initial = 0 if job.checkpoint is None else int(job.checkpoint["step"])
        on_progress, close = progress_bar(trainer.total_steps, initial, show_bar, metrics)
        trainer.on_progress = on_progress
        try:
            result = trainer.fit(job.checkpoint)
        except TrainingDiverged as exc:
            run.set_status(RunStatus.DIVERGED, error=str(exc))
            raise ValueError(f"{exc} (run folder {run.path})") from exc
        finally:
            close()
        if result.status == "interrupted":
            run.set_status(RunStatus.INTERRUPTED, step=result.steps)
            return None
        summary = _finish(job, result, metrics)
        run.set_status(RunStatus.FINISHED, step=result.steps, results=summary)
    return summary


def run_train(args: argparse.Namespace) -> int:
    job = prepare_resume(args) if args.resume is not None else prepare_new(args)
    summary = execute(job, show_bar=not args.json, say=lambda line: print(line, file=sys.stderr))
    if summary is None:
        print(f"mobilenas train: interrupted; checkpoint saved, continue with: mobilenas train --resume {job.run.path}",
              file=sys.stderr)
        return 130
    if args.json:
        import json

        print(json.dumps(summary))
    else:
        print(f"test top-1 {summary['top1']:.4f} | params {summary['params']:,} | MAdds {summary['madds'] / 1e6:.2f} M | "
              f"ORT CPU latency {summary['latency_ms']:.3f} ms (batch 1, 1 thread; {summary['latency_vs_reference']:.3f}x "
              f"MobileNetV3-Small, paired) | run {job.run.path}")
    return 0
