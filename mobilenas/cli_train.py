"""``mobilenas train``: train a spec on a data set, report test top-1, params, MAdds and ONNX
Runtime CPU latency, and keep everything in a run folder (``results/runs/<run-id>/``, written by
:mod:`training.job`): ``manifest.json``, ``metrics.csv``, ``checkpoint.pt``, ``model.pt``,
``model.onnx`` and ``spec.json``.

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
from pathlib import Path
from typing import Any, Callable

from mobilenas.job_args import add_optional_spec, check_resume, finish, refuse_with_resume
from mobilenas.spec_args import resolve_spec
from storage.runfolder import DEFAULT_OUT
from training.job import DEFAULT_LATENCY_REPEATS, TrainJob, create_job, execute, open_job, slug_for

DEFAULT_DATA = "mnist5k"


def register(subparsers: argparse._SubParsersAction) -> None:
    from training.config import DEVICES, OPTIMIZERS, SCHEDULES, TrainConfig

    d = TrainConfig()
    p = subparsers.add_parser(
        "train", help="train a spec on a data set; report test top-1, params, MAdds, ORT latency",
        description="Train SPEC on --data and write a run folder (manifest, per-epoch metrics, checkpoint, ONNX). "
                    "The spec's input channels and classes come from the data; its resolution from --resolution, "
                    "else 32 for mnist5k/digits/cifar10, else the data's native size. Defaults are TrainConfig's.")
    add_optional_spec(p)
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
    refuse_with_resume(p)  # every option defines the run: the run keeps its own
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
    return create_job(DEFAULT_OUT if args.out is None else args.out, spec, data, config, spec_name=args.spec,
                      data_name=name, split_seed=split_seed, slug=slug_for(args.spec, name), repeats=repeats,
                      extra={"machine": _machine()})


def prepare_resume(args: argparse.Namespace) -> TrainJob:
    """Refuse options that would change the run; open it with its recorded settings, each checked."""
    check_resume(args)
    return open_job(args.resume)


def resume_note(job: TrainJob) -> str:
    """What ``--resume`` will and will not do, for stderr."""
    step, total_steps = job.done_steps, job.total_steps
    if job.checkpoint is None:
        plan = "no checkpoint was written yet, so training starts at step 0"
    elif step >= total_steps:
        plan = f"training is complete ({step}/{total_steps} steps); only evaluation, ONNX export and latency run"
    else:
        plan = f"training continues at step {step}/{total_steps}; finished steps and epochs are not redone"
    return (f"mobilenas train: resuming {job.run.path} (was {job.resumed_from.value}): {plan}; spec, data, config, seed "
            f"and latency repeats ({job.repeats}) are the recorded ones")


def progress_bar(total: int, initial: int, enabled: bool) -> tuple[Callable, Callable]:
    """A tqdm bar on stderr (loss, train/val accuracy, ETA) fed by the trainer's progress callback."""
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

    return on_progress, bar.close


def measure_latency_ms(onnx_path: Path, input_shape: tuple[int, int, int], repeats: int) -> float:
    """ONNX Runtime CPU latency at batch 1, 1 thread, paired in blocks with MobileNetV3-Small at
    the same input shape (latency.paired): the ratio times the reference's speed meanwhile.
    Measured in the measuring child (latency.isolated), not in the process that trained."""
    from latency.endtoend import cached_model
    from latency.isolated import measure_where_fresh
    from latency.measurers import OrtMeasurer, OrtSettings
    from latency.paired import WHOLE_MODEL_PRECISION
    from search_spaces.reference import reference_spec

    measurer = OrtMeasurer(OrtSettings(intra_op_threads=1, batch=1, warmup=20, repeats=repeats))
    channels, side, _ = input_shape
    reference = reference_spec("mobilenetv3-small", resolution=side, in_channels=channels, num_classes=10)
    paired = measure_where_fresh(measurer, [onnx_path], [input_shape], cached_model(measurer, reference), input_shape,
                                 passes=2, precision=WHOLE_MODEL_PRECISION)[0]
    return paired.latency_ms


def run_job(job: TrainJob, show_bar: bool, say: Callable[[str], None]) -> dict[str, Any] | None:
    """Train with a progress bar; the summary, or None when stopped (checkpoint saved)."""
    on_progress, close = progress_bar(job.total_steps, job.done_steps, show_bar)
    note = None if job.resumed_from is None else (lambda: say(resume_note(job)))
    try:
        return execute(job, on_progress=on_progress, measure_ms=measure_latency_ms, on_start=note)
    finally:
        close()


def run_train(args: argparse.Namespace) -> int:
    job = prepare_resume(args) if args.resume is not None else prepare_new(args)
    summary = run_job(job, show_bar=not args.json, say=lambda line: print(line, file=sys.stderr))
    return finish(summary, as_json=args.json, show=lambda s: _show(s, job),
                  stopped=f"mobilenas train: interrupted; checkpoint saved, continue with: mobilenas train --resume "
                          f"{job.run.path}")


def _show(summary: dict[str, Any], job: TrainJob) -> None:
    print(f"test top-1 {summary['top1']:.4f} | params {summary['params']:,} | MAdds {summary['madds'] / 1e6:.2f} M | "
              f"ORT CPU latency {summary['latency_ms']:.3f} ms (batch 1, 1 thread, median) | run {job.run.path}")
