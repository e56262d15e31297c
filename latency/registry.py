"""Measurers by name, and re-creating a measurer from the settings a table recorded."""
from __future__ import annotations

from dataclasses import fields

from latency.command import CommandMeasurer, CommandSettings
from latency.cuda import TorchCudaMeasurer
from latency.measurers import Measurer, OrtMeasurer, OrtSettings, TorchMeasurer, TorchSettings
from latency.quantized import OrtInt8Measurer, OrtInt8Settings

MEASURERS: dict[str, tuple[type, type]] = {
    "ort-cpu": (OrtMeasurer, OrtSettings),
    "ort-cpu-int8": (OrtInt8Measurer, OrtInt8Settings),
    "torch-cpu": (TorchMeasurer, TorchSettings),
    "torch-cuda": (TorchCudaMeasurer, TorchSettings),
    "command": (CommandMeasurer, CommandSettings),
}
"""name -> (measurer class, settings class); contract tests run over every entry (``torch-cuda``
only where a GPU is present)."""


def make_measurer(name: str, settings: object | None = None) -> Measurer:
    """The measurer ``name`` with ``settings`` (its settings dataclass; default settings if None)."""
    if name not in MEASURERS:
        raise ValueError(f"measurer {name!r} is not known; expected one of {tuple(MEASURERS)}")
    cls, settings_cls = MEASURERS[name]
    if settings is None:
        settings = settings_cls()
    if not isinstance(settings, settings_cls):
        raise ValueError(f"measurer {name!r} needs {settings_cls.__name__}, got {type(settings).__name__}")
    return cls(settings)


def measurer_from_recorded(recorded: dict[str, object]) -> Measurer:
    """Re-create the measurer a table manifest recorded (``settings_dict()`` output)."""
    name = str(recorded.get("measurer"))
    if name not in MEASURERS:
        raise ValueError(f"the table's measurer {name!r} is not known; expected one of {tuple(MEASURERS)}")
    settings_cls = MEASURERS[name][1]
    names = {f.name for f in fields(settings_cls)}
    if "clock" in names and "clock" not in recorded:
        recorded = {**recorded, "clock": "wall"}  # recorded before the clock was a setting: timed on the wall clock
    return make_measurer(name, settings_cls(**{k: v for k, v in recorded.items() if k in names}))

