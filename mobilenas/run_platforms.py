"""``mobilenas run --platform A --platform B ...``: one run for several platforms (MnasNet
section 1: the best model depends on the platform). The recipe runs for each platform at its own
target, ``--target-like``'s latency on that platform; one supernet is trained once and shared
(its accuracies do not depend on the platform); every found model is then timed on every
platform and the report shows the matrix. It is the job of ``mobilenas platforms compare
--method search`` (:mod:`pipeline.compare_search`), started from ``mobilenas run``'s options and
resumed with ``mobilenas run --resume`` like any run."""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from mobilenas.cli_platforms import JOB, comparison_folder, run_comparison
from storage.runfolder import MANIFEST, RunFolder
NOT_PER_PLATFORM = {
    "target_ms": "--target-ms (one figure cannot be every platform's target: give --target-like, measured on each)",
    "table": "--table (each platform builds or reuses its own table)",
    "supernet": "--supernet (the run trains one supernet and shares it)",
    "address": "--address (the platforms' runs are measured on this machine)",
    "strategy": "--strategy", "w": "--w", "price_by": "--price-by",
}
"""``mobilenas run`` options a run for several platforms does not take, keyed by destination."""


def names_several(args: argparse.Namespace) -> bool:
    """The user named more than one platform, or resumes a run for several."""
    names = getattr(args, "platform", None)
    return (isinstance(names, list) and len(names) > 1) or _is_platforms_folder(getattr(args, "resume", None))


def _is_platforms_folder(path: Path | None) -> bool:
    try:
        return path is not None and json.loads((Path(path) / MANIFEST).read_text()).get("job") == JOB
    except (OSError, ValueError, AttributeError):
        return False  # not readable here: RunFolder.open says what is wrong


def comparison_settings(args: argparse.Namespace, defaults: dict[str, Any]) -> dict[str, Any]:
    """:class:`pipeline.compare.CompareConfig` settings from ``mobilenas run``'s options;
    ValueError naming every option given that a run for several platforms does not take."""
    refused = [flag for dest, flag in NOT_PER_PLATFORM.items()
               if getattr(args, dest) is not None and getattr(args, dest) != defaults.get(dest)]
    if args.evaluator == "proxy":
        refused.append("--evaluator proxy (the platforms share one supernet)")
    if refused:
        raise ValueError("a run for several --platform names does not take " + "; ".join(refused))
    repeated = sorted({name for name in args.platform if args.platform.count(name) > 1})
    if repeated:
        raise ValueError(f"--platform {', '.join(repeated)} is given more than once; name each platform once")
    given = {"space": args.space, "reward": args.reward, "target_like": args.target_like}
    return {"data": args.data, "method": "search", "budget": args.budget, "seed": args.seed, "threads": args.threads,
            "target_width": args.target_width, "target_scale": args.target_scale, "close_on": args.netadapt_close_on,
            **{key: value for key, value in given.items() if value is not None}}


def open_comparison(args: argparse.Namespace, defaults: dict[str, Any]) -> tuple[RunFolder, Any]:
    """The comparison's run folder, created or (``--resume``) reopened, and its settings."""
    return comparison_folder(args, args.platform, lambda: comparison_settings(args, defaults))


def run_platforms(args: argparse.Namespace, defaults: dict[str, Any]) -> int:
    """Run (or resume) the comparison; prints as ``mobilenas platforms compare`` does."""
    folder, config = open_comparison(args, defaults)
    return run_comparison(folder, config, as_json=args.json, command="mobilenas run")
