"""``mobilenas run``: from data to a deployable model in one resumable command (global search,
NetAdapt, full training, references, measurement, export, report; see :mod:`pipeline`)."""
from __future__ import annotations

import argparse
import dataclasses
import re
import sys
from pathlib import Path
from typing import Any

from mobilenas.job_args import add_data_argument, check_resume, refuse_with_resume, run_in_folder
from mobilenas.latency_args import DRIFT_FLAGS, add_drift_flags, given_on_drift, on_drift_of
from mobilenas.measurer_args import add_platform_argument, check_platform_table, platform_from_args
from nas.rewards import REWARD_KINDS
from nas.search import PRICE_BY
from netadapt.steering import CLOSE_ON
from pipeline.config import BUDGETS, PipelineConfig
from storage.runfolder import DEFAULT_OUT, RunFolder

ADDRESS = re.compile(r"^(auto|ray://[^\s]+|[A-Za-z0-9.\-]+:\d{1,5})$")
DEFAULTS = {f.name: f.default for f in dataclasses.fields(PipelineConfig)}
"""PipelineConfig's defaults: the one copy the options' defaults (and so ``--resume``'s check) come from."""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "run", help="the whole recipe: search, NetAdapt, train, measure, export, report",
        description="Search the MnasNet space for the latency target on this machine, refine the best model with "
                    "NetAdapt down to the target, train it and MobileNetV3 references with the same recipe, measure "
                    "them end to end, export the final model and write report.md/report.html.")
    add_data_argument(p)
    target = p.add_mutually_exclusive_group()
    target.add_argument("--target-ms", type=float, default=None, help="latency target in ms (ORT CPU, batch 1)")
    target.add_argument("--target-like", default=None, metavar="SPEC",
                        help="target = this spec's measured latency here (e.g. mobilenetv3-small), times --target-scale")
    p.add_argument("--target-width", type=float, default=DEFAULTS["target_width"],
                   help=f"width multiplier of --target-like (default {DEFAULTS['target_width']:g})")
    p.add_argument("--target-scale", type=float, default=DEFAULTS["target_scale"],
                   help=f"factor on --target-like's latency (default {DEFAULTS['target_scale']:g})")
    p.add_argument("--budget", choices=sorted(BUDGETS), default=DEFAULTS["budget"],
                   help=f"work per stage (default {DEFAULTS['budget']})")
    p.add_argument("--strategy", default=DEFAULTS["strategy"],
                   help=f"search strategy: rl, evolution, random, reinforce (default {DEFAULTS['strategy']})")
    p.add_argument("--space", default=None,
                   help=f"search space (default {DEFAULTS['space']}: MnasNet decisions on MobileNetV3-Small's stages "
                        f"and last stage; with --evaluator supernet its MBConv part, {DEFAULTS['space']}-mbconv, "
                        "or the --supernet's)")
    p.add_argument("--evaluator", choices=("proxy", "supernet"), default=None,
                   help="proxy: train every candidate briefly; supernet: train a weight-sharing supernet once, score "
                        "candidates with inherited weights and start NetAdapt and the final training from them "
                        f"(default {DEFAULTS['evaluator']}, or supernet with --supernet)")
    p.add_argument("--supernet", default=None, metavar="RUN_DIR",
                   help="a finished mobilenas supernet train run folder to use instead of training one")
    p.add_argument("--reward", default=None, choices=REWARD_KINDS,
                   help="the search's reward: mnasnet (ACC x (LAT/T)^w), hard (MnasNet's hard constraint) or absolute "
                        "(TuNAS); default mnasnet, or hard with --evaluator supernet (cheap candidates: the search "
                        "lands within its target and leaves NetAdapt little to cut)")
    p.add_argument("--w", type=float, default=DEFAULTS["w"],
                   help=f"MnasNet reward exponent (default {DEFAULTS['w']:g}, MobileNetV3-Small)")
    p.add_argument("--seed", type=int, default=DEFAULTS["seed"])
    p.add_argument("--netadapt-close-on", choices=CLOSE_ON, default=DEFAULTS["netadapt_close_on"],
                   help="what NetAdapt's iterations steer by: each kept model's paired measurement, or the table's "
                        f"prediction alone (default {DEFAULTS['netadapt_close_on']})")
    p.add_argument("--no-grow", dest="grow_start", action="store_false",
                   help="keep a NetAdapt start that measures under the budget as it is, instead of growing it in "
                        "depth and width to the budget first (NetAdapt only narrows)")
    p.add_argument("--price-by", choices=PRICE_BY, default=DEFAULTS["price_by"],
                   help="how the search prices candidates: each measured end to end, paired with the --target-like "
                        f"model, or the table's prediction (default {DEFAULTS['price_by']})")
    p.add_argument("--table", default=None, metavar="DIR", help="latency table folder (default: create or reuse one)")
    add_platform_argument(p, "the table", several="the recipe runs for each platform at its own target, one "
                          "supernet shared, and the report shows every found model timed on every platform "
                          "(as mobilenas platforms compare --method search)")
    add_drift_flags(p)
    p.add_argument("--address", default=None, help="join this Ray cluster (host:port or auto) instead of starting one")
    p.add_argument("--workers", type=int, default=DEFAULTS["workers"],
                   help=f"parallel trials / proposals (default {DEFAULTS['workers']}, one CPU each)")
    p.add_argument("--threads", type=int, default=DEFAULTS["threads"],
                   help=f"torch threads for the final trainings (default {DEFAULTS['threads']})")
    p.add_argument("--resume", type=Path, default=None, metavar="RUN_DIR", help="continue a stopped or killed run")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"folder for run folders (default {DEFAULT_OUT})")
    p.add_argument("--json", action="store_true", help="print one JSON object with the results")
    refuse_with_resume(p, *DRIFT_FLAGS, "out")  # how to open a table: the user's call, also on resume
    p.set_defaults(handler=run_pipeline)


def config_from_args(args: argparse.Namespace) -> PipelineConfig:
    """The validated settings (every option checked before any work starts)."""
    from nas.registry import STRATEGIES
    from training.datasets import default_resolution, load_dataset

    load_dataset(args.data, resolution=default_resolution(args.data), split_seed=0)  # a bad --data fails here
    if args.strategy not in STRATEGIES:
        raise ValueError(f"--strategy {args.strategy!r} is not known; expected one of {sorted(STRATEGIES)}")
    if args.address is not None and not ADDRESS.match(args.address):
        raise ValueError(f"--address {args.address!r} is not allowed; expected host:port, ray://host:port or auto")
    if args.table is not None and not (Path(args.table) / "manifest.json").is_file():
        raise FileNotFoundError(f"--table {args.table!r} is not a latency table folder (no manifest.json)")
    platform = platform_from_args(args)
    if platform is not None and args.table is not None:
        check_platform_table(platform, args.table)
    if args.target_like is not None:
        from mobilenas.spec_args import resolve_spec

        resolve_spec(args.target_like)
    evaluator = args.evaluator or ("supernet" if args.supernet is not None else DEFAULTS["evaluator"])
    supernet = None if args.supernet is None else str(Path(args.supernet).resolve())
    if supernet is not None and evaluator == "supernet":
        from nas.supernet_eval import check_supernet_run

        check_supernet_run(supernet, space=_space(args, evaluator), data=args.data)  # before any run folder
    return PipelineConfig(data=args.data, target_ms=args.target_ms, target_like=args.target_like,
                          target_width=args.target_width, target_scale=args.target_scale, budget=args.budget,
                          seed=args.seed, strategy=args.strategy, space=_space(args, evaluator), w=args.w,
                          evaluator=evaluator, supernet=supernet,
                          reward=args.reward or ("hard" if evaluator == "supernet" else DEFAULTS["reward"]),
                          table=args.table, on_drift=on_drift_of(args), address=args.address, workers=args.workers,
                          threads=args.threads, platform=None if platform is None else platform.record(),
                          netadapt_close_on=args.netadapt_close_on, price_by=args.price_by, grow_start=args.grow_start)


def _space(args: argparse.Namespace, evaluator: str) -> str:
    """``--space``, else the default space (with the supernet evaluator: the ``--supernet``'s space,
    else the default space's MBConv part, the part a supernet trains)."""
    if args.space is not None or evaluator != "supernet":
        return args.space or DEFAULTS["space"]
    if args.supernet is not None:
        from nas.supernet_eval import trained_space

        return trained_space(args.supernet) or f"{DEFAULTS['space']}-mbconv"
    return f"{DEFAULTS['space']}-mbconv"


def _open(args: argparse.Namespace) -> tuple[RunFolder, PipelineConfig]:
    if args.resume is not None:
        check_resume(args)
        folder = RunFolder.open(args.resume, job="run")
        folder.check_resumable()
        config = PipelineConfig.from_dict(folder.manifest["config"])
        on_drift = given_on_drift(args)
        if on_drift is not None and on_drift != config.on_drift:  # the user's call, also on resume
            _say(f"resuming with on_drift={on_drift} (recorded: {config.on_drift})")
            config = dataclasses.replace(config, on_drift=on_drift)
        return folder, config
    config = config_from_args(args)
    slug = f"run-{config.budget}-{config.data.split(':')[0]}"
    return RunFolder.create(args.out, job="run", slug=slug, seed=config.seed, config=config.to_dict()), config


def _say(message: str) -> None:
    print(f"mobilenas run: {message}", file=sys.stderr, flush=True)


def _show(summary: dict[str, Any]) -> None:
    print(f"final model: test top-1 {100 * summary['top1']:.2f}% | {summary['latency_ms']:.4f} ms measured "
          f"(target {summary['target_ms']:.4f} ms in the latency table's units) | params {summary['params']:,} | "
          f"MAdds {summary['madds'] / 1e6:.2f} M")
    print("measured in the same session, each paired with the same reference (compare the final model with these):")
    for ref in summary["references"]:
        print(f"  {ref['name']}: test top-1 {100 * ref['top1']:.2f}% | {ref['latency_ms']:.4f} ms")
    print(f"report: {summary['report']}")


def run_pipeline(args: argparse.Namespace) -> int:
    from mobilenas.run_platforms import names_several, run_platforms
    from pipeline.stages import pipeline_for

    if names_several(args):
        return run_platforms(args, DEFAULTS)
    folder, config = _open(args)
    return run_in_folder(folder, lambda stop: pipeline_for(folder, config, say=_say, stop=stop),
                         command="mobilenas run", say=_say, as_json=args.json, show=_show)
