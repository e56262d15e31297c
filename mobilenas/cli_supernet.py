"""``mobilenas supernet train``: train a weight-sharing supernet of a MnasNet space for one-shot
search (once-for-all, BigNAS). Every option is checked before any work starts; ``--resume``
continues a stopped or killed run from its last checkpoint."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mobilenas.job_args import check_resume, finish, refuse_with_resume
from nas.supernet import SUPERNET_SPACES
from nas.supernet_train import RULES, SupernetConfig
from storage.runfolder import DEFAULT_OUT
from training.config import DEVICES
from training.datasets import DEFAULT_SEARCH_DATA

DEFAULTS = SupernetConfig()
OPTIONS = ("space", "data", "epochs", "rule", "subnets_per_step", "spread", "batch_size", "lr", "calibration_images",
           "eval_every_epochs", "resolution", "seed", "threads", "device")


def register(subparsers: argparse._SubParsersAction) -> None:
    group = subparsers.add_parser("supernet", help="weight-sharing supernet for one-shot search",
                                  description="Train a supernet whose sub-networks are the architectures of a "
                                              "search space; mobilenas search --evaluator supernet uses it.")
    commands = group.add_subparsers(dest="supernet_command", metavar="COMMAND", required=True)
    p = commands.add_parser("train", help="train a supernet (sandwich rule + in-place distillation, or uniform)",
                            description="Train the supernet of --space on the training split of --data.")
    p.add_argument("--space", default=None, help=f"{', '.join(SUPERNET_SPACES)} (default {DEFAULTS.space})")
    p.add_argument("--data", default=None, help=f"data set (default {DEFAULT_SEARCH_DATA}; the search's data)")
    p.add_argument("--epochs", type=int, default=None, help=f"default {DEFAULTS.epochs}")
    p.add_argument("--rule", default=None, choices=RULES,
                   help=f"sandwich (BigNAS: largest, smallest, random, distilled) or uniform (default {DEFAULTS.rule})")
    p.add_argument("--subnets-per-step", type=int, default=None,
                   help=f"sandwich sub-networks per step (default {DEFAULTS.subnets_per_step})")
    p.add_argument("--spread", type=float, default=None,
                   help="fraction of the steps over which the sandwich's random sub-networks move from near the "
                        f"largest and smallest to the whole space (0: uniform throughout; default {DEFAULTS.spread})")
    p.add_argument("--batch-size", type=int, default=None, help=f"default {DEFAULTS.batch_size}")
    p.add_argument("--lr", type=float, default=None, help=f"peak learning rate (default {DEFAULTS.lr})")
    p.add_argument("--calibration-images", type=int, default=None,
                   help=f"training images for BatchNorm recalibration (default {DEFAULTS.calibration_images})")
    p.add_argument("--eval-every-epochs", type=int, default=None,
                   help="validate the largest and smallest sub-networks every N epochs and at the end (default 1)")
    p.add_argument("--resolution", type=int, default=None, help="training resolution (default: the data set's)")
    p.add_argument("--seed", type=int, default=None, help="default 0")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default 1; results are bit-identical "
                                                             "for a fixed count)")
    p.add_argument("--device", default=None, choices=DEVICES, help=f"default {DEFAULTS.device} (CUDA when present)")
    p.add_argument("--resume", type=Path, default=None, metavar="RUN_DIR", help="continue a stopped or killed run")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"folder for run folders (default {DEFAULT_OUT})")
    p.add_argument("--json", action="store_true", help="print one JSON object with the results")
    refuse_with_resume(p, "out")
    p.set_defaults(handler=run_supernet_train)


def config_from_args(args: argparse.Namespace) -> SupernetConfig:
    """The validated settings of a new run (ValueError naming the bad option)."""
    from training.datasets import parse_name

    given = {name: getattr(args, name) for name in OPTIONS if getattr(args, name) is not None}
    config = SupernetConfig(**given)
    parse_name(config.data)
    if args.out.exists() and not args.out.is_dir():
        raise NotADirectoryError(f"--out {str(args.out)!r} is a file; expected a folder for run folders")
    return config


def _progress(row: dict[str, float]) -> None:
    val = ("" if row["val_top1_largest"] != row["val_top1_largest"] else
           f" | val top-1 largest {100 * row['val_top1_largest']:.1f}% smallest {100 * row['val_top1_smallest']:.1f}%")
    print(f"supernet: epoch {row['epoch']} | loss {row['loss_labels']:.3f} (labels) {row['loss_distill']:.3f} "
          f"(distillation){val} | {row['train_s']:.0f} s", file=sys.stderr, flush=True)


def run_supernet_train(args: argparse.Namespace) -> int:
    from nas.supernet_job import SupernetJob, open_supernet_run

    if args.resume is not None:
        check_resume(args)
        folder, config = open_supernet_run(args.resume)
    else:
        folder, config = None, config_from_args(args)
    job = SupernetJob(config, out=args.out, folder=folder,
                      say=lambda message: print(f"supernet: {message}", file=sys.stderr, flush=True), progress=_progress)
    return finish(job.run(), as_json=args.json, show=_show,
                  stopped=f"mobilenas supernet train: interrupted; checkpoint saved, continue with: "
                          f"mobilenas supernet train --resume {job.folder.path}")


def _show(result: dict) -> None:
    print(f"supernet trained: val top-1 largest {100 * result['val_top1_largest']:.2f}%, smallest "
          f"{100 * result['val_top1_smallest']:.2f}% | run {result['run_dir']}")
