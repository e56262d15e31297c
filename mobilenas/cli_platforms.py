"""``mobilenas platforms compare``: a model found for each platform, timed on every platform
(:mod:`pipeline.compare`). Resumable after a kill with ``--resume RUN_DIR``."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Callable

from mobilenas.job_args import add_data_argument, check_resume, refuse_with_resume, run_in_folder
from nas.rewards import REWARD_KINDS
from netadapt.steering import CLOSE_ON
from pipeline.config import BUDGETS, COMPARE_METHODS
from storage.runfolder import DEFAULT_OUT, RunFolder

JOB = "platforms"
NUMBERS = {"start_width": float, "target_width": float, "target_scale": float, "seed": int, "pretrain_epochs": int,
           "short_steps": int, "delta_fraction": float, "long_epochs": int, "threads": int, "pairs": int}


def register(subparsers: argparse._SubParsersAction) -> None:
    group = subparsers.add_parser("platforms", help="compare platforms: one model found per platform, run on every one")
    sub = group.add_subparsers(dest="platforms_command", metavar="SUBCOMMAND", required=True)
    p = sub.add_parser("compare", help="find a model for each platform's target (NetAdapt from one start model, or a "
                                       "search per platform), then time every found model on every platform "
                                       "(matrix.json, matrix.png, architectures.md)")
    p.add_argument("--platforms", nargs="+", default=None, metavar="NAME", help="two or more platform names")
    add_data_argument(p, default=None)
    p.add_argument("--method", choices=COMPARE_METHODS, default=None,
                   help="netadapt (default): shrink one trained start model to each platform's target; search: one "
                        "supernet trained once, then mobilenas run's search, NetAdapt and final training per platform "
                        "(can change depth, kernels, SE: what a per-operator platform such as torch-cpu needs)")
    p.add_argument("--space", default=None, help="with --method search: the supernet's space (default mnasnet-small-mbconv)")
    p.add_argument("--budget", choices=sorted(BUDGETS), default=None, help="with --method search: mobilenas run's budget "
                                                                          "(default small)")
    p.add_argument("--reward", choices=REWARD_KINDS, default=None, help="with --method search: the search's reward "
                                                                       "(default hard, MnasNet's hard constraint)")
    p.add_argument("--start", default=None, help="start model NetAdapt shrinks (default mobilenetv3-large)")
    p.add_argument("--target-like", default=None, help="each platform's target is this model's latency there "
                                                        "(default mobilenetv3-small)")
    for name, kind in NUMBERS.items():
        p.add_argument(f"--{name.replace('_', '-')}", type=kind, default=None)
    p.add_argument("--close-on", choices=CLOSE_ON, default=None,
                   help="what each platform's NetAdapt steers by: the found model's paired measurement on the platform "
                        "(default: measured) or the platform's table alone (predicted)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"folder for run folders (default {DEFAULT_OUT})")
    p.add_argument("--resume", type=Path, default=None, metavar="RUN_DIR", help="continue a stopped or killed comparison")
    p.add_argument("--json", action="store_true", help="print one JSON object with the results")
    refuse_with_resume(p, "out")
    p.set_defaults(handler=run_compare)


def _open(args: argparse.Namespace) -> tuple[RunFolder, Any]:
    given = {k: getattr(args, k) for k in ("data", "start", "target_like", "close_on", "method", "space", "budget", "reward",
                                          *NUMBERS) if getattr(args, k) is not None}
    if args.resume is None and not args.platforms:
        raise ValueError("--platforms NAME NAME ... is required (see `mobilenas platform list`), or --resume RUN_DIR")
    if args.resume is None and args.out.exists() and not args.out.is_dir():
        raise NotADirectoryError(f"--out {str(args.out)!r} is a file; expected a folder for run folders")
    return comparison_folder(args, args.platforms, lambda: given)


def comparison_folder(args: argparse.Namespace, names: list[str] | None,
                      settings: Callable[[], dict[str, Any]]) -> tuple[RunFolder, Any]:
    """The comparison's run folder and settings: reopened with ``args.resume`` (its recorded
    settings), else created under ``args.out`` for the platforms ``names`` with ``settings()``."""
    from pipeline.compare import CompareConfig

    if args.resume is not None:
        check_resume(args)
        folder = RunFolder.open(args.resume, job=JOB)
        folder.check_resumable()
        return folder, CompareConfig.from_dict(folder.manifest["config"])
    config = CompareConfig.for_names(names, **settings())
    return RunFolder.create(args.out, job=JOB, slug="platforms-" + "-".join(config.names)[:40], seed=config.seed,
                            config=config.to_dict()), config


def _say(message: str) -> None:
    print(f"mobilenas platforms: {message}", file=sys.stderr, flush=True)


def run_compare(args: argparse.Namespace) -> int:
    folder, config = _open(args)
    return run_comparison(folder, config, as_json=args.json)


def run_comparison(folder: RunFolder, config: Any, *, as_json: bool, command: str = "mobilenas platforms compare") -> int:
    """Run (or resume) the comparison in ``folder``; the summary printed (one JSON object with ``as_json``)."""
    from pipeline.compare_job import compare_run

    return run_in_folder(folder, lambda stop: compare_run(folder, config, say=_say, stop=stop),
                         command=command, say=_say, as_json=as_json, show=_show)


def _show(summary: dict[str, Any]) -> None:
    for name, verdict in summary["verdicts"].items():
        print(f"{name}: own model at {verdict['latency_ratio']:.3f}x its target "
              f"({'meets' if verdict['meets_target'] else 'misses'} it), test top-1 {100 * verdict['top1']:.2f}%, "
              f"{'on' if verdict['on_own_front'] else 'off'} its platform's Pareto front")
    print(f"matrix: {summary['matrix_json']} (and matrix.csv, matrix.png, architectures.md beside it)")
