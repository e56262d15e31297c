"""Shared command-line arguments for naming a spec: a registered name or a spec file."""
from __future__ import annotations

import argparse
from pathlib import Path

from search_spaces.encoding import parse_spec, spec_from_json
from search_spaces.reference import REFERENCE_SPECS, reference_spec
from search_spaces.spec import ArchSpec, scale_width


def add_spec_arguments(parser: argparse.ArgumentParser) -> None:
    """SPEC plus --resolution/--width/--classes/--in-channels."""
    parser.add_argument("spec", metavar="SPEC",
                        help=f"a registered name ({', '.join(REFERENCE_SPECS)}), a spec JSON file, "
                             "or a canonical spec string")
    parser.add_argument("--resolution", type=int, default=None, help="input side in pixels (default: the spec's, 224 for names)")
    parser.add_argument("--width", type=float, default=1.0, help="width multiplier (channels rounded to multiples of 8)")
    parser.add_argument("--classes", type=int, default=None, help="number of classes (default: the spec's, 1000 for names)")
    parser.add_argument("--in-channels", type=int, default=None, help="input channels (default: the spec's, 3 for names)")


def read_spec_file(path: Path) -> ArchSpec:
    """A spec from a JSON file or a file holding the canonical string."""
    if not path.exists():
        raise FileNotFoundError(f"spec file {str(path)!r} does not exist")
    text = path.read_text()
    if text.lstrip().startswith("{"):
        return spec_from_json(text)
    return parse_spec(text)


def resolve_spec(name: str, *, resolution: int | None = None, width: float = 1.0,
                 num_classes: int | None = None, in_channels: int | None = None) -> ArchSpec:
    """Resolve SPEC (name, file or string) and apply the overrides."""
    if name in REFERENCE_SPECS:
        return reference_spec(name, resolution=224 if resolution is None else resolution, width=width,
                              num_classes=1000 if num_classes is None else num_classes,
                              in_channels=3 if in_channels is None else in_channels)
    if "|" in name:
        spec = parse_spec(name)
    elif name.endswith((".json", ".txt")) or Path(name).exists():
        spec = read_spec_file(Path(name))
    else:
        raise ValueError(f"unknown spec {name!r}: not a registered name ({', '.join(REFERENCE_SPECS)}) nor an existing file")
    overrides = {k: v for k, v in (("resolution", resolution), ("num_classes", num_classes), ("in_channels", in_channels)) if v is not None}
    return scale_width(spec.replace(**overrides) if overrides else spec, width)


def spec_from_args(args: argparse.Namespace) -> ArchSpec:
    return resolve_spec(args.spec, resolution=args.resolution, width=args.width, num_classes=args.classes,
                        in_channels=args.in_channels)
