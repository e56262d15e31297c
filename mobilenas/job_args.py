"""What the commands that run a job share: the data option, the optional SPEC (absent with
``--resume``), which options ``--resume`` refuses, and how a finished or stopped job ends the
command (exit code, ``--json``)."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Callable

from training.datasets import DEFAULT_SEARCH_DATA

STOPPED = 130
"""Exit code of a job stopped by Ctrl-C or SIGTERM (its finished work saved), as a shell reports SIGINT."""


def add_data_argument(parser: argparse.ArgumentParser, default: str | None = DEFAULT_SEARCH_DATA) -> None:
    """``--data`` (``default`` None: the recorded or the job's own default, shown as the search's)."""
    parser.add_argument("--data", default=default, help=f"data set (default {DEFAULT_SEARCH_DATA})")


def add_optional_spec(parser: argparse.ArgumentParser) -> None:
    """SPEC, required unless ``--resume`` names a run that recorded it."""
    parser.add_argument("spec", nargs="?", metavar="SPEC",
                        help="a registered name, a spec JSON file or a canonical spec string")


def refuse_with_resume(parser: argparse.ArgumentParser, *allowed: str) -> None:
    """Record, once ``parser`` has all its options, the ones ``--resume`` refuses: every option
    but ``--resume``, ``--json`` and the dests in ``allowed``, each with its parser default (the
    one copy of the defaults), for :func:`check_resume`."""
    skip = {"help", "resume", "json", *allowed}
    refused = {a.dest: (_flag(a), _parsed_default(a)) for a in parser._actions
               if a.dest not in skip and a.default is not argparse.SUPPRESS}
    parser.set_defaults(_resume_refuses=refused)


def _flag(action: argparse.Action) -> str:
    """How the user wrote an option: its long flag (``--target-ms``), or a positional's metavar (``SPEC``)."""
    if action.option_strings:
        return max(action.option_strings, key=len)
    return action.metavar or action.dest.upper()


def _parsed_default(action: argparse.Action) -> Any:
    """The default as it lands in the namespace: argparse passes a string default through ``type``."""
    if isinstance(action.default, str) and callable(action.type):
        return action.type(action.default)
    return action.default


def check_resume(args: argparse.Namespace) -> None:
    """ValueError naming every option recorded by :func:`refuse_with_resume` that ``args`` holds
    at another value than its default; call it before any run folder is opened."""
    given = [flag for dest, (flag, default) in args._resume_refuses.items() if getattr(args, dest) != default]
    if given:
        raise ValueError(f"--resume continues the run with its recorded settings; drop {', '.join(given)}")


def _to_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def finish(result: dict[str, Any] | None, *, as_json: bool, show: Callable[[dict[str, Any]], None], stopped: str,
           say: Callable[[str], None] = _to_stderr) -> int:
    """The command's exit code: :data:`STOPPED` with ``stopped`` said when the job stopped
    (``result`` None), else 0 with the result printed (one JSON object with ``--json``, else ``show``)."""
    if result is None:
        say(stopped)
        return STOPPED
    if as_json:
        print(json.dumps(result))
    else:
        show(result)
    return 0


def run_in_folder(folder: Any, job: Callable[[Callable[[], bool]], dict[str, Any] | None], *, command: str,
                  say: Callable[[str], None], as_json: bool, show: Callable[[dict[str, Any]], None]) -> int:
    """Run a pipeline ``job(stop)`` in its run folder's session (:func:`pipeline.runner.run_in_session`)
    and end the command as :func:`finish` does; ``command`` is what resumes it."""
    from pipeline.runner import run_in_session

    say(f"run folder {folder.path}")
    summary = run_in_session(folder, job)
    return finish(summary, as_json=as_json, show=show, say=say,
                  stopped=f"stopped; finished work is saved: {command} --resume {folder.path}")
