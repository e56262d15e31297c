"""Naming a spec: a registered name, a spec file, a canonical spec string, or a JSON object
(inline or in a file): spec JSON, or any JSON the tools print around a spec (a ``space sample``
line, ``show --json``), which carries it as ``spec``/``arch``. Errors name the value, not a
command-line flag (the command line adds its own)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from search_spaces.encoding import parse_spec, spec_from_dict
from search_spaces.reference import REFERENCE_SPECS, reference_spec
from search_spaces.spec import ArchSpec, scale_width


MAX_WIDTH = 10.0
"""Largest width multiplier accepted (the paper uses 0.35 to 1.25; ``--width 100`` is a typo)."""


def spec_from_object(data: Any, where: str = "spec JSON") -> ArchSpec:
    """A spec from parsed JSON: versioned spec JSON itself, or an object holding it under
    ``spec`` (``space sample`` lines, ``show --json``) or its canonical string under ``arch``."""
    if not isinstance(data, dict):
        raise ValueError(f"{where} is not a JSON object; expected spec JSON or an object with 'spec' or 'arch'")
    if "stem" in data or "schema_version" in data:
        return spec_from_dict(data)
    if isinstance(data.get("spec"), dict):
        return spec_from_dict(data["spec"])
    for key in ("arch", "best_spec"):  # show --json / space sample; a search's summary.json
        if isinstance(data.get(key), str):
            return parse_spec(data[key])
    raise ValueError(f"{where} has keys {sorted(data)}; expected spec JSON (schema_version, stem, blocks, head...) "
                     "or an object with 'spec' (spec JSON) or 'arch'/'best_spec' (a canonical spec string)")


def spec_from_text(text: str, where: str = "SPEC") -> ArchSpec:
    """A spec from a canonical string or one JSON object (see :func:`spec_from_object`)."""
    text = text.strip()
    if not text.startswith("{"):
        return parse_spec(text)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        if "\n{" in text:
            raise ValueError(f"{where} holds several JSON lines; give one spec (one line of 'space sample')") from None
        raise ValueError(f"{where} is not valid JSON ({exc})") from None
    return spec_from_object(data, where)


def read_spec_file(path: Path) -> ArchSpec:
    """A spec from a file: spec JSON, a JSON object holding one, or the canonical string."""
    if not path.exists():
        raise FileNotFoundError(f"spec file {str(path)!r} does not exist")
    if path.is_dir():
        raise IsADirectoryError(f"spec file {str(path)!r} is a folder; expected a spec JSON file or canonical string")
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        raise ValueError(f"spec file {str(path)!r} is not text; expected spec JSON or a canonical spec string") from None
    return spec_from_text(text, where=f"spec file {str(path)!r}")


def check_width(width: float, label: str = "width multiplier") -> float:
    """``width`` if it is a width multiplier in (0, MAX_WIDTH]; else ValueError naming ``label``."""
    if isinstance(width, bool) or not isinstance(width, (int, float)) or not (0 < width <= MAX_WIDTH):
        raise ValueError(f"{label} = {width!r} is not allowed; expected a width multiplier: a finite number in "
                         f"(0, {MAX_WIDTH:g}]")
    return width


def resolve_spec(name: str, *, resolution: int | None = None, width: float = 1.0,
                 num_classes: int | None = None, in_channels: int | None = None) -> ArchSpec:
    """Resolve a spec name, file or string and apply the overrides."""
    check_width(width)
    if name in REFERENCE_SPECS:
        return reference_spec(name, resolution=224 if resolution is None else resolution, width=width,
                              num_classes=1000 if num_classes is None else num_classes,
                              in_channels=3 if in_channels is None else in_channels)
    if name.lstrip().startswith("{"):
        spec = spec_from_text(name)
    elif "|" in name:
        spec = parse_spec(name)
    elif name.endswith((".json", ".txt")) or Path(name).exists():
        spec = read_spec_file(Path(name))
    else:
        raise ValueError(f"unknown spec {name!r}: not a registered name ({', '.join(REFERENCE_SPECS)}) nor an existing file")
    overrides = {k: v for k, v in (("resolution", resolution), ("num_classes", num_classes), ("in_channels", in_channels)) if v is not None}
    return scale_width(spec.replace(**overrides) if overrides else spec, width)
