"""``mobilenas netadapt``: shrink a trained model layer by layer to a latency target
(MobileNetV3 section 4.2; NetAdapt, Yang et al. 2018).

Every option is checked, the latency table opened and the target compared with the start and
floor latencies before a run folder is created. The run folder (``results/runs/<run-id>/``,
job ``netadapt``) holds ``manifest.json``, ``history.csv`` (every proposal of every iteration),
``state.json`` and ``models/`` (the last committed iteration), then ``trajectory.png``,
``final.json``/``final.md``/``final.pt``/``final.onnx``. Ctrl-C stops after the current
iteration; a SIGKILL loses at most the iteration in progress; ``--resume RUN_DIR`` continues.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path
from typing import Any

from latency.platforms import Platform, file_table, resolve_table, table_key
from mobilenas.job_args import add_data_argument, add_optional_spec, check_resume, finish, refuse_with_resume
from mobilenas.latency_args import DRIFT_FLAGS, add_drift_flags, given_on_drift, on_drift_of
from mobilenas.measurer_args import add_platform_argument, platform_from_args
from mobilenas.progress import ProgressBar
from netadapt.job import (DEFAULT_TABLE_SPACE, JobSetup, check_target, default_table_folder, execute, open_predictor,
                          read_setup)
from mobilenas.spec_args import resolve_spec
from netadapt.floor import floor_spec
from netadapt.loop import LoopEvent, NetAdaptConfig
from netadapt.selection import SELECTIONS
from search_spaces.encoding import format_spec
from search_spaces.registry import SPACES
from search_spaces.spec import ArchSpec
from storage.runfolder import DEFAULT_OUT, RunFolder
from training.config import DEVICES, TrainConfig
from training.datasets import default_resolution, load_dataset

DEFAULTS = NetAdaptConfig(target_ms=1.0)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "netadapt", help="NetAdapt: shrink a trained model layer by layer to a latency target",
        description="Shrink SPEC one layer (or residual group) at a time, each step the proposal with the best "
                    "accuracy change per millisecond saved, until the predicted latency reaches --target-ms; "
                    "then fine-tune. Without --weights SPEC is first trained with the default recipe.")
    add_optional_spec(p)
    p.add_argument("--weights", type=Path, default=None, metavar="CKPT_OR_RUN_DIR",
                   help="a mobilenas train checkpoint.pt or run folder, or a state-dict .pt")
    p.add_argument("--target-ms", type=float, default=None, help="latency target in ms (predicted by the table)")
    add_data_argument(p)
    p.add_argument("--split-seed", type=int, default=0, help="seed of the train/val/test split")
    p.add_argument("--short-steps", type=int, default=DEFAULTS.short_steps,
                   help=f"fine-tune steps per proposal (default {DEFAULTS.short_steps}; paper 10000)")
    p.add_argument("--max-proposals", type=int, default=None,
                   help="fine-tune at most this many proposals per iteration, those whose predicted saving is "
                        "nearest the cut asked (default: all, as NetAdapt)")
    p.add_argument("--long-epochs", type=int, default=DEFAULTS.long_epochs,
                   help=f"final fine-tune epochs (default {DEFAULTS.long_epochs}; 0 = none)")
    p.add_argument("--select", choices=SELECTIONS, default=DEFAULTS.select,
                   help="ratio: best Δaccuracy/|Δlatency| (MobileNetV3); accuracy: most accurate (NetAdapt)")
    p.add_argument("--accuracy-tolerance", type=float, default=DEFAULTS.accuracy_tolerance, metavar="STDERRS",
                   help="with --select ratio, an accuracy change within this many standard errors of the current "
                        f"model's top-1 counts as none (default {DEFAULTS.accuracy_tolerance:g}; 0: the plain ratio)")
    p.add_argument("--delta", type=float, default=DEFAULTS.delta_fraction,
                   help=f"latency cut per iteration as a fraction of the start latency (default {DEFAULTS.delta_fraction})")
    p.add_argument("--max-cut", type=float, default=DEFAULTS.max_cut_fraction,
                   help=f"the most of a layer's channels one proposal removes (default {DEFAULTS.max_cut_fraction})")
    p.add_argument("--granularity", type=int, default=DEFAULTS.granularity,
                   help=f"channel step and minimum width (default {DEFAULTS.granularity})")
    p.add_argument("--table", type=Path, default=None, metavar="DIR",
                   help="latency table folder (default: a lazy table for this machine under --out, built if absent)")
    p.add_argument("--table-space", choices=sorted(SPACES), default=DEFAULT_TABLE_SPACE,
                   help="registered space whose latency table prices the models when none is given: the table's "
                        f"reference and calibration samples come from it (default {DEFAULT_TABLE_SPACE})")
    add_platform_argument(p, "the start model and every proposal")
    add_drift_flags(p)
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                   help="proposals fine-tuned in parallel as Ray tasks (1 = in-process, no Ray)")
    p.add_argument("--address", default=None, help="an existing Ray cluster to run the proposals on")
    p.add_argument("--pretrain-epochs", type=int, default=TrainConfig().epochs,
                   help="epochs of the start model's training when no --weights are given")
    p.add_argument("--device", choices=DEVICES, default=DEFAULTS.device, help="training device")
    p.add_argument("--seed", type=int, default=DEFAULTS.seed)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"folder for run folders (default {DEFAULT_OUT})")
    p.add_argument("--resume", type=Path, default=None, metavar="RUN_DIR", help="continue an interrupted or killed run")
    p.add_argument("--json", action="store_true", help="print one JSON object with the results")
    refuse_with_resume(p, *DRIFT_FLAGS)  # how to open the table: the user's call, also on resume
    p.set_defaults(handler=run_netadapt)


def _config(args: argparse.Namespace) -> NetAdaptConfig:
    if args.target_ms is None:
        raise ValueError("--target-ms is required (the latency to reach, in ms)")
    return NetAdaptConfig(target_ms=args.target_ms, delta_fraction=args.delta, granularity=args.granularity,
                          max_cut_fraction=args.max_cut,
                          short_steps=args.short_steps, long_epochs=args.long_epochs, select=args.select,
                          max_proposals=args.max_proposals, accuracy_tolerance=args.accuracy_tolerance, seed=args.seed,
                          device=args.device, long_threads=os.cpu_count() or 1)


def _check_flags(args: argparse.Namespace) -> None:
    for name in ("workers", "pretrain_epochs"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} {getattr(args, name)} is not allowed; expected an integer >= 1")
    if args.weights is not None and not args.weights.exists():
        raise FileNotFoundError(f"--weights {str(args.weights)!r} does not exist")
    if args.out.exists() and not args.out.is_dir():
        raise NotADirectoryError(f"--out {str(args.out)!r} is a file; expected a folder for run folders")


def prepare(args: argparse.Namespace, say) -> JobSetup:
    """Validate everything and open the latency table, before any run folder exists."""
    if args.spec is None:
        raise ValueError("SPEC is required unless --resume RUN_DIR is given")
    config = _config(args)
    _check_flags(args)
    data = load_dataset(args.data, resolution=default_resolution(args.data), split_seed=args.split_seed)
    spec = resolve_spec(args.spec, resolution=data.resolution, num_classes=data.num_classes, in_channels=data.in_channels)
    platform = platform_from_args(args)
    table, own = _choose_table(args, spec, platform)
    on_drift = on_drift_of(args)
    setup = JobSetup(config, format_spec(spec), args.spec, args.data, args.split_seed, str(table), on_drift,
                     args.workers, args.address, None if args.weights is None else str(args.weights.resolve()),
                     args.pretrain_epochs, table_trusted=own,
                     platform=None if platform is None else platform.record(), table_space=args.table_space)
    floor = floor_spec(spec, config.proposal_config())
    measurer = None if platform is None else platform.make_measurer()
    predictor = open_predictor(table, spec, on_drift, say, create=own, calibrate=floor, trusted=own, measurer=measurer,
                               space=setup.table_space)
    if platform is not None and own:
        say(file_table(platform, table_key(args.table_space, spec.resolution, spec.in_channels, spec.num_classes), table))
    l0_ms, floor_ms = check_target(setup, predictor.predict_ms)
    say(f"start {l0_ms:.4f} ms predicted, target {config.target_ms:.4f} ms ({config.target_ms / l0_ms:.0%}), "
        f"floor {floor_ms:.4f} ms")
    return setup


def _choose_table(args: argparse.Namespace, spec: ArchSpec, platform: Platform | None) -> tuple[Path, bool]:
    """``--table`` as given (checked against the platform), else the platform's table for this
    shape, else this job's own lazy table under ``--out`` (per platform); True for the last."""
    key = table_key(args.table_space, spec.resolution, spec.in_channels, spec.num_classes)
    chosen = resolve_table(platform, None if args.table is None else str(args.table), key)
    if chosen is not None:
        return Path(chosen), False
    return default_table_folder(args.out, spec, None if platform is None else platform.name), True


class Progress:
    """NetAdapt's progress on stderr (:class:`mobilenas.progress.ProgressBar`), counted in
    milliseconds cut towards the target, so tqdm's ETA is the remaining cut at this session's
    rate; each iteration shows latency now vs target, the kept proposal and its accuracy."""

    def __init__(self) -> None:
        self.bar = ProgressBar()

    def __call__(self, event: LoopEvent) -> None:
        to_cut = max(event.l0_ms - event.target_ms, 1e-9)
        cut = min(max(event.l0_ms - event.predicted_ms, 0.0), to_cut)
        if event.phase == "proposals":
            self.bar.begin(cut)  # the session's first iteration starts here (a resumed run: part-way)
        if event.phase == "iteration":
            self.bar.update(cut, to_cut, f"mobilenas netadapt: iteration {event.iteration}: {event.predicted_ms:.4f} ms "
                                         f"(target {event.target_ms:.4f}, start {event.l0_ms:.4f}) | kept "
                                         f"{event.best_label}, val top-1 {event.top1:.4f} | {event.iteration_s:.0f} s")
            return
        if event.phase == "proposals":
            line = f"iteration {event.iteration + 1}: fine-tuning {event.proposals} proposals"
        elif event.phase == "long":
            line = f"target reached after {event.iteration} iterations; final fine-tune"
        else:
            line = f"done: {event.predicted_ms:.4f} ms predicted, val top-1 {event.top1:.4f}"
        ProgressBar.write(f"mobilenas netadapt: {line}")

    def close(self) -> None:
        self.bar.close()


def say(message: str) -> None:
    ProgressBar.write(f"mobilenas netadapt: {message}")


def _open_or_create(args: argparse.Namespace, say) -> tuple[RunFolder, JobSetup]:
    if args.resume is not None:
        check_resume(args)
        folder = RunFolder.open(args.resume, job="netadapt")
        folder.check_resumable()
        return folder, resumed_setup(read_setup(folder), given_on_drift(args))
    setup = prepare(args, say)
    slug = f"netadapt-{Path(setup.spec_name).stem[:20]}-{setup.data.split(':')[0]}"
    folder = RunFolder.create(args.out, job="netadapt", slug=slug, seed=setup.netadapt.seed, config=setup.to_dict())
    return folder, setup


def resumed_setup(setup: JobSetup, on_drift: str | None) -> JobSetup:
    """The recorded job, opening its table with ``--rescale``/``--force`` when given on resume."""
    if on_drift is None or on_drift == setup.on_drift:
        return setup
    say(f"resuming with on_drift={on_drift} (recorded: {setup.on_drift})")
    return dataclasses.replace(setup, on_drift=on_drift)


def _show(summary: dict[str, Any]) -> None:
    print(f"{summary['iterations']} iterations | predicted {summary['start_predicted_ms']:.4f} -> "
          f"{summary['predicted_latency_ms']:.4f} ms (target {summary['target_ms']:.4f}) | measured "
          f"{summary['measured_latency_ms']:.4f} ms (table units, paired) | test top-1 {summary['final_top1']:.4f} | run {summary['run_dir']}")


def run_netadapt(args: argparse.Namespace) -> int:
    folder, setup = _open_or_create(args, say)
    say(f"run folder {folder.path}")
    progress = Progress()
    with folder.session() as stop:
        try:
            summary = execute(folder, setup, stop, say, progress)
        finally:
            progress.close()
    return finish(summary, as_json=args.json, show=_show, say=say,
                  stopped=f"stopped; every finished iteration is saved: mobilenas netadapt --resume {folder.path}")
