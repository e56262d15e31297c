"""Measurer options shared by ``latency build`` and ``platform add``, and ``--platform NAME``.

The options default to None, so a command can tell which ones the user gave (``latency build
--platform`` refuses them: the platform fixes every setting); :func:`settings_from_args` fills
in :data:`OPTION_DEFAULTS`, the settings of the tables a search builds by itself.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from latency.command import CommandSettings
from latency.measurers import Measurer, OrtSettings, TorchSettings
from latency.platforms import Platform, check_table, get_platform
from latency.quantized import QUANT_FORMATS, OrtInt8Settings
from latency.registry import MEASURERS, make_measurer
from latency.table import read_manifest

OPTION_DEFAULTS = {"threads": 1, "batch": 1, "warmup": 5, "repeats": 20, "quant_format": "qdq", "per_channel": False,
                   "quant_batches": 4, "command_template": None, "pattern": CommandSettings.pattern, "unit": "ms",
                   "device_id": None}
"""What an option left out means (``measurer`` itself defaults to ``ort-cpu``)."""
MEASURER_OPTIONS = ("measurer", *OPTION_DEFAULTS)


def add_measurer_arguments(p: argparse.ArgumentParser) -> None:
    """``--measurer`` and every setting a measurer takes (each None unless given)."""
    p.add_argument("--measurer", choices=tuple(MEASURERS), default=None, help="default ort-cpu")
    p.add_argument("--command", dest="command_template", metavar="TEMPLATE", default=None,
                   help="command template for --measurer command, with {model}")
    p.add_argument("--pattern", default=None, help="regex reading the latency from the command output "
                   "(group 'value', optional 'unit'; default: a number followed by ms)")
    p.add_argument("--unit", default=None, help="unit of the number the pattern reads (us, ms, s; default ms)")
    p.add_argument("--quant-format", choices=tuple(QUANT_FORMATS), default=None,
                   help="ort-cpu-int8: quantized graph format (quantize_static; default qdq)")
    p.add_argument("--per-channel", action="store_true", default=None, help="ort-cpu-int8: per-channel weight scales")
    p.add_argument("--quant-batches", type=int, default=None,
                   help="ort-cpu-int8: calibration batches for quantize_static (default 4)")
    p.add_argument("--device-id", default=None,
                   help="name of the device the command times on (e.g. serial + SoC); recorded and matched")
    p.add_argument("--threads", type=int, default=None, help="intra-op threads (ORT) / torch threads (default 1)")
    p.add_argument("--batch", type=int, default=None, help="default 1")
    p.add_argument("--warmup", type=int, default=None, help="default 5")
    p.add_argument("--repeats", type=int, default=None,
                   help="timed runs per pass (a key gets up to 3 passes if noisy; default 20)")


def given_options(args: argparse.Namespace) -> list[str]:
    """The measurer options on the command line, as flags."""
    flags = {"command_template": "--command"}
    return [flags.get(name, "--" + name.replace("_", "-")) for name in MEASURER_OPTIONS if getattr(args, name) is not None]


def settings_from_args(args: argparse.Namespace) -> tuple[str, object]:
    """The measurer's name and its settings dataclass from the options (ValueError naming a bad one)."""
    name = args.measurer or "ort-cpu"
    o = {k: OPTION_DEFAULTS[k] if getattr(args, k) is None else getattr(args, k) for k in OPTION_DEFAULTS}
    timing = {"batch": o["batch"], "warmup": o["warmup"], "repeats": o["repeats"]}
    if name == "ort-cpu":
        return name, OrtSettings(intra_op_threads=o["threads"], **timing)
    if name == "ort-cpu-int8":
        return name, OrtInt8Settings(intra_op_threads=o["threads"], quant_format=o["quant_format"],
                                     per_channel=o["per_channel"], calibration_batches=o["quant_batches"], **timing)
    if name in ("torch-cpu", "torch-cuda"):
        return name, TorchSettings(threads=o["threads"], **timing)
    if not o["command_template"]:
        raise ValueError("--measurer command needs --command TEMPLATE (with a {model} placeholder)")
    return name, CommandSettings(template=o["command_template"], pattern=o["pattern"], unit=o["unit"],
                                 batch=o["batch"], device_id=o["device_id"])


def measurer_from_args(args: argparse.Namespace) -> Measurer:
    """The measurer the options describe."""
    return make_measurer(*settings_from_args(args))


def add_platform_argument(p: argparse.ArgumentParser, what: str, *, several: str | None = None) -> None:
    """``--platform NAME``: a named platform (``mobilenas platform list``); ``several``: what
    giving it more than once does (the option then collects a list)."""
    p.add_argument("--platform", default=None, metavar="NAME", action="append" if several else "store",
                   help=f"measure {what} with this platform's measurer and settings and file the tables it builds "
                        "there (see mobilenas platform list)" + (f"; given more than once, {several}" if several else ""))


def platform_from_args(args: argparse.Namespace) -> Platform | None:
    """The platform ``--platform`` names, or None (ValueError listing the known ones)."""
    name = getattr(args, "platform", None)
    if name is None:
        return None
    if isinstance(name, list):  # an option that may be given several times, given once
        (name,) = name
    return get_platform(name)


def check_platform_table(platform: Platform, table: str) -> None:
    """ValueError when the table folder ``table`` was measured with other settings than ``platform``'s."""
    check_table(platform, table, read_manifest(Path(table)))
