"""Named platforms: a measurer with all its settings, saved under a name.

MnasNet (section 3) and MobileNetV3 (section 4) measure latency on the platform the model
is for, because the best architecture depends on it. A :class:`Platform` names one such
target: the measurer (runtime, precision, threads, provider, or a device reached by a
command, with its device id) and every setting it times with, plus the latency tables built
for it. Commands take ``--platform NAME`` instead of repeating measurer options.

Built-in platforms (:func:`builtin_platforms`): ONNX Runtime CPU float with 1 and with 2
intra-op threads, ONNX Runtime CPU int8 (static QDQ quantization), torch eager CPU, and torch
CUDA where a GPU is present. User platforms are JSON files in ``$MOBILENAS_HOME/platforms``
(default ``~/.mobilenas/platforms``), one per name, written atomically; a corrupt or foreign
file is refused naming the file.
"""
from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch

from latency.measurers import Measurer
from latency.registry import MEASURERS, make_measurer
from latency.table import read_manifest
from storage.statefiles import StateFileError, read_json, write_json

PLATFORM_FORMAT = 1
NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
DEFAULT_MEASURE = {"warmup": 5, "repeats": 20}
"""Timing settings of every built-in platform: those of the tables a search builds by itself,
so ``--platform ort-cpu-1t`` and no platform share tables."""


@dataclass(frozen=True)
class Platform:
    """A measurer with all its settings under a name, and the tables measured with it.

    ``settings`` are the fields of the measurer's settings dataclass (:data:`latency.registry.MEASURERS`);
    ``tables`` maps ``"<space>/r<resolution>/i<in_channels>/n<classes>"`` to a table folder."""

    name: str
    measurer: str
    settings: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    tables: dict[str, str] = field(default_factory=dict)
    builtin: bool = False

    def __post_init__(self) -> None:
        if not NAME.match(self.name):
            raise ValueError(f"platform name {self.name!r} is not allowed; expected lower-case letters, digits, '.', '_' "
                             "or '-' (at most 64, starting with a letter or digit)")
        if self.measurer not in MEASURERS:
            raise ValueError(f"platform {self.name!r}: measurer {self.measurer!r} is not known; expected one of "
                             f"{tuple(MEASURERS)}")
        self.settings_object()  # the settings dataclass checks every value

    def settings_object(self) -> object:
        """The measurer's settings dataclass (ValueError naming an unknown or bad field)."""
        settings_cls = MEASURERS[self.measurer][1]
        known = {f.name for f in fields(settings_cls)}
        unknown = sorted(set(self.settings) - known)
        if unknown:
            raise ValueError(f"platform {self.name!r}: {', '.join(unknown)} not settings of measurer {self.measurer!r}; "
                             f"expected some of {sorted(known)}")
        try:
            return settings_cls(**self.settings)
        except TypeError as exc:
            raise ValueError(f"platform {self.name!r}: {exc}") from None

    def make_measurer(self) -> Measurer:
        """A fresh measurer with this platform's settings."""
        return make_measurer(self.measurer, self.settings_object())

    def settings_dict(self) -> dict[str, object]:
        """What a table built on this platform records as its measurer."""
        return self.make_measurer().settings_dict()

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["settings"] = asdict(self.settings_object())
        return data

    def record(self) -> dict[str, Any]:
        """What a job records to rebuild this platform from its run folder alone: the name, the
        measurer and every setting (later edits of the saved platform do not change the job)."""
        return {"name": self.name, "measurer": self.measurer, "settings": asdict(self.settings_object())}

    @classmethod
    def from_record(cls, data: dict[str, Any]) -> "Platform":
        """The platform :meth:`record` wrote (ValueError naming a bad field)."""
        if not isinstance(data, dict) or set(data) != {"name", "measurer", "settings"}:
            raise ValueError(f"platform record {data!r} is not allowed; expected an object with name, measurer, settings")
        return cls(str(data["name"]), str(data["measurer"]), dict(data["settings"]))


def table_key(space: str, resolution: int, in_channels: int, num_classes: int) -> str:
    """The key a platform files a table under."""
    return f"{space}/r{int(resolution)}/i{int(in_channels)}/n{int(num_classes)}"


def builtin_platforms() -> dict[str, Platform]:
    """The platforms every installation has (torch CUDA only where a GPU is present)."""
    found = [
        Platform("ort-cpu-1t", "ort-cpu", {"intra_op_threads": 1, **DEFAULT_MEASURE},
                 "ONNX Runtime CPU, float32, 1 intra-op thread (the default tables)", builtin=True),
        Platform("ort-cpu-2t", "ort-cpu", {"intra_op_threads": 2, **DEFAULT_MEASURE},
                 "ONNX Runtime CPU, float32, 2 intra-op threads", builtin=True),
        Platform("ort-cpu-int8", "ort-cpu-int8", {"intra_op_threads": 1, **DEFAULT_MEASURE},
                 "ONNX Runtime CPU, int8 static quantization (QDQ, per-tensor), 1 thread", builtin=True),
        Platform("torch-cpu", "torch-cpu", {"threads": 1, **DEFAULT_MEASURE},
                 "torch eager CPU, float32, 1 thread", builtin=True),
    ]
    if "torch-cuda" in MEASURERS and torch.cuda.is_available():
        found.append(Platform("torch-cuda", "torch-cuda", dict(DEFAULT_MEASURE), "torch eager CUDA, float32",
                              builtin=True))
    return {p.name: p for p in found}


def platforms_home() -> Path:
    """``$MOBILENAS_HOME/platforms`` (default ``~/.mobilenas/platforms``)."""
    return Path(os.environ.get("MOBILENAS_HOME") or Path.home() / ".mobilenas") / "platforms"


def _path(name: str) -> Path:
    return platforms_home() / f"{name}.json"


def _read(path: Path) -> Platform:
    data = read_json(path, what="platform file")
    if not isinstance(data, dict) or data.get("format") != PLATFORM_FORMAT:
        raise StateFileError(f"{path}: not a MobileNAS platform file of format {PLATFORM_FORMAT}")
    try:
        platform = Platform(**{k: v for k, v in data.items() if k not in ("format", "builtin")},
                            builtin=path.stem in builtin_platforms())
    except (TypeError, ValueError) as exc:
        raise StateFileError(f"{path}: {exc}") from None
    if path.stem != platform.name:
        raise StateFileError(f"{path}: holds platform {platform.name!r}, not {path.stem!r}")
    return platform


def list_platforms() -> dict[str, Platform]:
    """Built-in then saved platforms by name (a saved one may not shadow a built-in)."""
    found = builtin_platforms()
    folder = platforms_home()
    if folder.is_dir():
        for path in sorted(folder.glob("*.json")):
            found[path.stem] = _read(path)
    return found


def get_platform(name: str) -> Platform:
    """The platform ``name`` (ValueError listing the known ones)."""
    builtins = builtin_platforms()
    if name in builtins and not _path(name).is_file():
        return builtins[name]
    if _path(name).is_file():
        return _read(_path(name))
    raise ValueError(f"platform {name!r} is not known; known: {', '.join(list_platforms())} "
                     "(`mobilenas platform add NAME ...` saves one)")


def save_platform(platform: Platform, *, replace: bool = False) -> Path:
    """Write ``platform`` to its file (refused when the name is taken, unless ``replace``)."""
    if platform.name in builtin_platforms() and not platform.builtin:
        raise ValueError(f"platform {platform.name!r} is built in; choose another name")
    path = _path(platform.name)
    if path.exists() and not replace:
        raise FileExistsError(f"platform {platform.name!r} exists ({path}); pass --replace, remove it first or choose another name")
    data = {"format": PLATFORM_FORMAT, **platform.to_dict()}
    data.pop("builtin")
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, data)
    return path


def remove_platform(name: str) -> Path:
    """Delete a saved platform (its tables stay on disk)."""
    path = _path(name)
    if not path.is_file():
        raise ValueError(f"platform {name!r} is not a saved platform" + (" (it is built in)" if name in builtin_platforms() else ""))
    path.unlink()
    return path


def record_table(name: str, key: str, folder: Path) -> Platform:
    """File the table ``folder`` under ``key`` in platform ``name`` (a built-in platform gets
    a saved copy holding its tables)."""
    platform = get_platform(name)
    updated = Platform(platform.name, platform.measurer, dict(platform.settings), platform.description,
                       {**platform.tables, key: str(Path(folder).resolve())}, builtin=platform.builtin)
    save_platform(updated, replace=True)
    return updated


def filed_table(platform: Platform, key: str) -> Path | None:
    """The table filed under ``key`` in the platform of ``platform``'s name, when that platform
    still has ``platform``'s settings (a job's record may be older) and the table still exists."""
    try:
        current = get_platform(platform.name)
    except (ValueError, StateFileError):
        return None
    folder = current.tables.get(key)
    if current.record() != platform.record() or folder is None or not (Path(folder) / "manifest.json").is_file():
        return None
    return Path(folder)


def settings_differences(platform: Platform, recorded: dict[str, Any]) -> list[str]:
    """How the measurer settings a table recorded differ from ``platform``'s (runtime versions aside)."""
    wanted = {"measurer": platform.measurer, **asdict(platform.settings_object())}
    return [f"{name} {recorded.get(name)!r} (platform: {value!r})" for name, value in wanted.items()
            if recorded.get(name) != value]


def check_table(platform: Platform, folder: str | Path, manifest: dict[str, Any]) -> None:
    """ValueError when the table in ``folder`` (its ``manifest``) was measured with other settings
    than ``platform``'s."""
    diffs = settings_differences(platform, manifest.get("measurer") or {})
    if diffs:
        raise ValueError(f"table {folder} was not measured with platform {platform.name!r}'s settings: "
                         f"{'; '.join(diffs)}; expected a table of that platform (or drop --table)")


def resolve_table(platform: Platform | None, table: str | None, key: str) -> str | None:
    """The table a job opens: ``table`` as given (refused when measured with other settings than
    ``platform``'s), else the platform's table filed under ``key``; None: the job builds its own
    lazily with the platform's measurer (or the default one without a platform)."""
    if table is not None:
        if platform is not None and (Path(table) / "manifest.json").is_file():
            check_table(platform, table, read_manifest(Path(table)))
        return table
    if platform is None:
        return None
    found = filed_table(platform, key)
    return None if found is None else str(found)


def file_table(platform: Platform, key: str, folder: Path) -> str:
    """File ``folder`` under ``key`` in the saved platform of that name when it still has these
    settings; one line saying what happened."""
    try:
        current = get_platform(platform.name)
    except (ValueError, StateFileError) as exc:
        return f"table not filed in platform {platform.name!r}: {exc}"
    if current.record() != platform.record():
        return f"table not filed in platform {platform.name!r}: its settings changed since this job started"
    if current.tables.get(key) == str(Path(folder).resolve()):
        return f"table {folder} is platform {platform.name!r}'s for {key}"
    try:
        record_table(platform.name, key, folder)
    except (ValueError, OSError) as exc:  # filing is a convenience: the job's own table is already in place
        return f"table not filed in platform {platform.name!r}: {exc}"
    return f"filed table {folder} in platform {platform.name!r} for {key}"
