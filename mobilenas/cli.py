"""The ``mobilenas`` command line. Each command group lives in its own ``cli_*`` module that
exposes ``register(subparsers)``; this module only assembles them and turns user errors
into one line on stderr with exit code 2 (no traceback)."""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

from mobilenas import __version__

# Modules that add sub-commands, in help order.
COMMAND_MODULES = (
    "mobilenas.cli_spec",
    "mobilenas.cli_demo",
    "mobilenas.cli_train",
    "mobilenas.cli_latency",
)


class UsageError(Exception):
    """A problem with what the user asked for; printed as one line, exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mobilenas",
        description="Platform-aware NAS for mobile CNNs: specs, training, latency tables, search, NetAdapt.",
    )
    parser.add_argument("--version", action="version", version=f"mobilenas {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details to stderr")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.handler(args) or 0)
    except (UsageError, ValueError, FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError) as exc:
        print(f"mobilenas {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"mobilenas {args.command}: interrupted; completed work was saved where the command supports resuming",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
