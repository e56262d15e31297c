"""Every command's ``--help`` renders: argparse formats help strings with ``%``, so a literal
percent sign in one breaks that command's help (and only it)."""
from __future__ import annotations

import argparse

import pytest

from mobilenas.cli import build_parser


def _commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    found = [(path, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.extend(_commands(sub, path + (name,)))
    return found


COMMANDS = _commands(build_parser())


def test_the_walk_reaches_nested_commands():
    paths = {path for path, _ in COMMANDS}
    assert ("latency", "build") in paths and ("supernet", "train") in paths and ("run",) in paths


@pytest.mark.parametrize("path,parser", COMMANDS, ids=[" ".join(p) or "mobilenas" for p, _ in COMMANDS])
def test_help_renders(path, parser):
    text = parser.format_help()
    assert text.startswith("usage:")
