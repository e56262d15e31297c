"""Shared command-line arguments for naming a spec (``SPEC`` plus --resolution/--width/--classes/
--in-channels); the resolution itself is :mod:`search_spaces.resolve`."""
from __future__ import annotations

import argparse

from search_spaces import resolve
from search_spaces.reference import REFERENCE_SPECS
from search_spaces.spec import ArchSpec


def add_spec_arguments(parser: argparse.ArgumentParser) -> None:
    """SPEC plus --resolution/--width/--classes/--in-channels."""
    parser.add_argument("spec", metavar="SPEC",
                        help=f"a registered name ({', '.join(REFERENCE_SPECS)}), a spec JSON file, a canonical "
                             "spec string, or a JSON line of 'mobilenas space sample' / 'show --json'")
    parser.add_argument("--resolution", type=int, default=None, help="input side in pixels (default: the spec's, 224 for names)")
    parser.add_argument("--width", type=float, default=1.0, help="width multiplier (channels rounded to multiples of 8)")
    parser.add_argument("--classes", type=int, default=None, help="number of classes (default: the spec's, 1000 for names)")
    parser.add_argument("--in-channels", type=int, default=None, help="input channels (default: the spec's, 3 for names)")


def resolve_spec(name: str, *, resolution: int | None = None, width: float = 1.0,
                 num_classes: int | None = None, in_channels: int | None = None) -> ArchSpec:
    """:func:`search_spaces.resolve.resolve_spec` with ``--width`` checked under its flag's name."""
    return resolve.resolve_spec(name, resolution=resolution, width=resolve.check_width(width, "--width"),
                                num_classes=num_classes,
                                in_channels=in_channels)


def spec_from_args(args: argparse.Namespace) -> ArchSpec:
    return resolve_spec(args.spec, resolution=args.resolution, width=args.width, num_classes=args.classes,
                        in_channels=args.in_channels)
