"""``mobilenas search``: the platform-aware global search on Ray Tune (MnasNet sections 3-4,
MobileNetV3 section 4.1). Every option is checked before any work starts; ``--resume``
continues a stopped or killed search from its run folder."""
from __future__ import annotations

import argparse
import json
import math
import re
from pathlib import Path
from typing import Any

from nas.search import EVALUATOR_NAMES, PRICE_BY, STRATEGY_NAMES, ProgressInfo, SearchConfig
from mobilenas.job_args import check_resume, refuse_with_resume
from mobilenas.latency_args import DRIFT_FLAGS, add_drift_flags, given_on_drift
from mobilenas.measurer_args import add_platform_argument, check_platform_table, platform_from_args
from mobilenas.progress import ProgressBar
from nas.rewards import REWARD_KINDS
from storage.runfolder import DEFAULT_OUT, RunFolder
from search_spaces.registry import SPACES
from storage.status import Status
from training.datasets import DEFAULT_SEARCH_DATA

DEFAULTS = SearchConfig(target_ms=1.0)
SEARCH_OPTIONS = ("space", "data", "target_ms", "strategy", "strategy_config", "trials", "seed", "reward", "w", "epochs",
                  "concurrency",
                  "cpus_per_trial", "train_subset", "asha", "resolution", "price_resolution", "price_in_channels",
                  "price_classes", "price_by", "table", "on_drift", "evaluator", "supernet", "platform")
ON_DRIFT = ("error", "rescale", "force")
ADDRESS = re.compile(r"^(auto|ray://[^\s]+|[A-Za-z0-9.\-]+:\d{1,5})$")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("search", help="platform-aware global search (Ray Tune) for a latency target",
                              description="Search the MnasNet space for the best reward ACC x (LAT/T)^w: each trial "
                                          "proxy-trains one candidate; latency comes from a table for this machine.")
    p.add_argument("--space", default=None, choices=sorted(SPACES),
                   help=f"search space (default {DEFAULTS.space}, or the --supernet's space)")
    p.add_argument("--data", default=None, help=f"data set (default {DEFAULT_SEARCH_DATA}; see mobilenas train --help)")
    p.add_argument("--target-ms", type=float, default=None, help="target latency T in ms (required for a new search)")
    p.add_argument("--strategy", default=None, choices=STRATEGY_NAMES, help=f"default {DEFAULTS.strategy}")
    p.add_argument("--trials", type=int, default=None, help=f"trial budget (default {DEFAULTS.trials})")
    p.add_argument("--seed", type=int, default=None, help="strategy and training seed (default 0)")
    p.add_argument("--reward", default=None, choices=REWARD_KINDS, help=f"default {DEFAULTS.reward}")
    p.add_argument("--w", type=float, default=None,
                   help="reward exponent (mnasnet: alpha = beta = w, default -0.07; hard/absolute: beta = w)")
    p.add_argument("--strategy-config", type=_json_object, default=None, metavar="JSON",
                   help='strategy settings, e.g. \'{"population_size": 8}\' (keys of its config; default: its defaults)')
    p.add_argument("--evaluator", default=None, choices=EVALUATOR_NAMES,
                   help=f"proxy: train each candidate; supernet: inherit weights from --supernet (default {DEFAULTS.evaluator})")
    p.add_argument("--supernet", default=None, metavar="RUN_DIR",
                   help="a finished run folder of mobilenas supernet train for the search's space and --data")
    p.add_argument("--epochs", type=int, default=None, help=f"proxy epochs per trial (default {DEFAULTS.epochs})")
    p.add_argument("--train-subset", type=int, default=None, help="train each trial on this many images (default all)")
    p.add_argument("--asha", action="store_true", default=None, help="ASHA early stopping between epochs (--epochs >= 2)")
    p.add_argument("--concurrency", type=int, default=None, help=f"trials at once (default {DEFAULTS.concurrency})")
    p.add_argument("--cpus-per-trial", type=int, default=None, help=f"CPUs (torch threads) per trial (default {DEFAULTS.cpus_per_trial})")
    p.add_argument("--resolution", type=int, default=None, help="training resolution (default: the data set's)")
    p.add_argument("--price-resolution", type=int, default=None,
                   help="price candidates at this resolution instead of the trained one (deployment shape)")
    p.add_argument("--price-in-channels", type=int, default=None, help="price at this many input channels")
    p.add_argument("--price-classes", type=int, default=None, help="price at this many classes")
    p.add_argument("--price-by", default=None, choices=PRICE_BY,
                   help="table: the table's prediction; measured: each candidate timed end to end, paired with the "
                        f"table's reference (MnasNet; about 0.5 s a 32x32 candidate) (default {DEFAULTS.price_by})")
    p.add_argument("--table", default=None, metavar="DIR",
                   help="latency table folder (default: a lazy table in the run folder, or a matching one copied)")
    add_platform_argument(p, "candidates")
    add_drift_flags(p).add_argument("--on-drift", default=None, choices=ON_DRIFT,
                                    help="the same choice in one option: error (default), rescale or force")
    p.add_argument("--address", default=None, help="join this Ray cluster (host:port or auto) instead of starting one")
    p.add_argument("--resume", type=Path, default=None, metavar="RUN_DIR", help="continue a stopped or killed search")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"folder for run folders (default {DEFAULT_OUT})")
    p.add_argument("--json", action="store_true", help="print one JSON object with the results")
    refuse_with_resume(p, *DRIFT_FLAGS, "on_drift", "address", "out")  # the table and Ray: the user's call, also on resume
    p.set_defaults(handler=run_search)


def config_from_args(args: argparse.Namespace) -> SearchConfig:
    """The validated settings of a new search (ValueError naming the bad option)."""
    if args.target_ms is None:
        raise ValueError("--target-ms is required for a new search (or give --resume RUN_DIR)")
    given = {name: getattr(args, name) for name in SEARCH_OPTIONS
             if getattr(args, name) is not None and name not in ("table", "on_drift", "platform")}
    given.setdefault("data", DEFAULT_SEARCH_DATA)
    if args.supernet is not None:
        given["supernet"] = str(Path(args.supernet).resolve())  # a resumed search may run from another folder
        given.setdefault("evaluator", "supernet")  # --supernet alone means the supernet evaluator
        if "space" not in given:
            from nas.supernet_eval import trained_space

            given["space"] = trained_space(args.supernet) or DEFAULTS.space  # the supernet's space unless given
    platform = platform_from_args(args)
    if platform is not None:
        given["platform"] = platform.record()
    if given.get("evaluator") == "supernet" and args.epochs is not None:
        raise ValueError("--epochs applies to the proxy evaluator only, not to --evaluator supernet")
    return SearchConfig(**given)


def _json_object(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("expected a JSON object")
    return value


def check_options(args: argparse.Namespace, config: SearchConfig) -> None:
    """Everything that can be checked without doing the work."""
    from nas.registry import STRATEGIES, make_config
    from training.datasets import parse_name

    parse_name(config.data)
    if config.strategy not in STRATEGIES:
        raise ValueError(f"--strategy {config.strategy!r} is not available in this build; available: {sorted(STRATEGIES)}")
    try:
        make_config(config.strategy, config.strategy_config)
    except TypeError as exc:
        raise ValueError(f"--strategy-config {config.strategy_config}: {exc}") from None
    if args.address is not None and not ADDRESS.match(args.address):
        raise ValueError(f"--address {args.address!r} is not allowed; expected host:port, ray://host:port or auto")
    if args.table is not None and not (Path(args.table) / "manifest.json").is_file():
        raise FileNotFoundError(f"--table {args.table!r} is not a latency table folder (no manifest.json)")
    platform = platform_from_args(args)
    if args.table is not None and platform is not None:
        check_platform_table(platform, args.table)
    if args.out.exists() and not args.out.is_dir():
        raise NotADirectoryError(f"--out {str(args.out)!r} is a file; expected a folder for run folders")
    if config.evaluator == "supernet":
        from nas.supernet_eval import check_supernet_run

        check_supernet_run(config.supernet, space=config.space, data=config.data)


def open_resumed(args: argparse.Namespace) -> tuple[RunFolder, SearchConfig]:
    check_resume(args)
    folder = RunFolder.open(args.resume, job="search")
    folder.check_resumable()
    return folder, SearchConfig.from_dict(folder.manifest["config"], f"{folder.path / 'manifest.json'}: config")


class ProgressLine:
    """The search's progress on stderr (:class:`mobilenas.progress.ProgressBar`): trials done,
    the best reward with its top-1 and latency, elapsed time and ETA."""

    def __init__(self) -> None:
        self.bar = ProgressBar()

    def __call__(self, info: ProgressInfo) -> None:
        best = ("best reward -" if math.isnan(info.best_reward) else
                f"best reward {info.best_reward:.4f} (top-1 {100 * info.best_top1:.1f}%, {info.best_latency_ms:.3f} ms)")
        # called once per finished trial, the first time after this session's first one
        self.bar.update(info.done, info.total, f"search: {info.done}/{info.total} trials | {best}",
                        initial=info.done - 1, elapsed=info.elapsed_s)

    def close(self) -> None:
        self.bar.close()


def say(message: str) -> None:
    ProgressBar.write(f"search: {message}")


def run_search(args: argparse.Namespace) -> int:
    if args.resume is not None:
        folder, config = open_resumed(args)
        check_options(args, config)
    else:
        config = config_from_args(args)
        check_options(args, config)
        folder = None
    from nas.job import SearchJob  # heavy imports only after the options are checked

    job = SearchJob(config, out=args.out, table=args.table, on_drift=given_on_drift(args), address=args.address,
                    folder=folder, say=say, progress=ProgressLine())
    try:
        result = job.run()
    finally:
        job.progress.close()
    if args.json:
        print(json.dumps(result))
    else:
        _print_summary(result)
    return 0 if job.folder.status is Status.FINISHED else 130


def _print_summary(result: dict[str, Any]) -> None:
    print(f"run folder: {result['run_dir']}")
    print(f"trials: {result['trials']}/{result['budget']} {result['statuses']}")
    if result["best_spec"] is not None:
        print(f"best: trial {result['best_trial']} reward {result['best_reward']:.4f}, proxy top-1 "
              f"{100 * result['best_top1']:.2f}% (+/- {100 * result['best_top1_stderr']:.2f}), predicted "
              f"{result['best_latency_ms']:.4f} ms (target {result['target_ms']:g} ms)")
        print(f"best spec: {result['best_spec']}")
        print(f"files: best.json best.md pareto.csv pareto.png trials.csv summary.json in {result['run_dir']}")
