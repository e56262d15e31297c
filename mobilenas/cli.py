"""The ``mobilenas`` command line. Each command group lives in its own ``cli_*`` module that
exposes ``register(subparsers)``; this module only assembles them and turns user errors
into one line on stderr with exit code 2 (no traceback)."""
from __future__ import annotations

import argparse
import importlib
import logging
import os
import re
import sys
from typing import NoReturn

from mobilenas import __version__

# Modules that add sub-commands, in help order.
COMMAND_MODULES = (
    "mobilenas.cli_spec",
    "mobilenas.cli_demo",
    "mobilenas.cli_train",
    "mobilenas.cli_latency",
    "mobilenas.cli_platform",
    "mobilenas.cli_search",
    "mobilenas.cli_supernet",
    "mobilenas.cli_netadapt",
    "mobilenas.cli_run",
    "mobilenas.cli_compare",
    "mobilenas.cli_platforms",
)


class UsageError(Exception):
    """A problem with what the user asked for; printed as one line, exit code 2."""


USER_ERRORS = (UsageError, ValueError, OSError)
"""Exceptions that are the user's input or environment (a bad value, file, folder, full disk):
one line, exit code 2. StateFileError is a ValueError; a measure command's failure is too."""


class OneLineParser(argparse.ArgumentParser):
    """argparse with usage errors as one line (the usage block is for ``--help``); sub-command
    parsers inherit the class."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="mobilenas",
        description="Platform-aware NAS for mobile CNNs: specs, training, latency tables, search, NetAdapt.",
    )
    parser.add_argument("--version", action="version", version=f"mobilenas {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details to stderr")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    _name_commands(parser)
    return parser


def _name_commands(parser: argparse.ArgumentParser) -> None:
    """Give every (sub-)command parser a ``_prog`` default (e.g. ``mobilenas latency build``):
    the prefix of its error lines, safe from options whose dest is ``command``."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                sub.set_defaults(_prog=sub.prog)
                _name_commands(sub)


def one_line(exc: BaseException) -> str:
    """The error as one line: an OS error as ``file: reason``, newlines folded."""
    text = str(exc)
    if isinstance(exc, OSError) and exc.strerror:
        text = f"{exc.filename}: {exc.strerror}" if exc.filename else exc.strerror
    return re.sub(r"\s*\n\s*", " | ", text.strip()) or type(exc).__name__


def _quiet_broken_pipe() -> int:
    """The reader of stdout went away (``| head``): stop quietly, as Unix tools do."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version or a usage error (already printed, one line)
        return exc.code if isinstance(exc.code, int) else 2
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    prog = getattr(args, "_prog", "mobilenas")
    try:
        code = int(args.handler(args) or 0)
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        return _quiet_broken_pipe()
    except USER_ERRORS as exc:
        print(f"{prog}: error: {one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; completed work was saved where the command supports resuming", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug, not a user error: still one line, the traceback with -v
        if args.verbose:
            raise
        print(f"{prog}: internal error: {type(exc).__name__}: {one_line(exc)} (run with -v for the traceback)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
