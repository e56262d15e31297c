"""Settings dataclasses (CONTRIBUTING.md, Style): numeric fields declared with their range, checked
in one place, and read back from state files refusing unknown keys.

A component declares ``count: int = setting(8, low=1)``; :func:`check_settings` (called from the
dataclass's ``__post_init__``) refuses a bool, a value of the wrong type, a non-finite number or
one out of range with one line: ``<label> = <value> is not allowed; expected an integer >= 1``,
where ``label`` is the field's name in the component's words (``--epochs``, ``netadapt.seed``).
"""
from __future__ import annotations

import math
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, Mapping, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Bound:
    """What a numeric setting may hold: ``kind`` int or float, within ``low``..``high`` (each
    inclusive unless open), or None when ``optional``."""

    kind: type
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    optional: bool = False

    def allows(self, value: Any) -> bool:
        if value is None:
            return self.optional
        if isinstance(value, bool) or not isinstance(value, int if self.kind is int else (int, float)):
            return False
        if not math.isfinite(value):
            return False
        low_ok = self.low is None or (value > self.low if self.low_open else value >= self.low)
        high_ok = self.high is None or (value < self.high if self.high_open else value <= self.high)
        return low_ok and high_ok

    def describe(self) -> str:
        kind = "an integer" if self.kind is int else "a number"
        low = "" if self.low is None else f"{'>' if self.low_open else '>='} {self.low:g}"
        high = "" if self.high is None else f"{'<' if self.high_open else '<='} {self.high:g}"
        text = f"{kind} {low}{' and ' if low and high else ''}{high}".rstrip()
        return f"None or {text}" if self.optional else text


def setting(default: Any = MISSING, *, kind: type = int, low: float | None = None, high: float | None = None,
            low_open: bool = False, high_open: bool = False, optional: bool = False) -> Any:
    """A dataclass field whose value :func:`check_settings` keeps in range."""
    return field(default=default, metadata={"bound": Bound(kind, low, high, low_open, high_open, optional)})


def check_settings(settings: Any, label: str = "{name}") -> None:
    """ValueError for the first declared field out of its :class:`Bound`; ``label`` formats the
    field's name for the message (``{name}`` and ``{flag}``, the name as a command-line flag)."""
    for item in fields(settings):
        bound = item.metadata.get("bound")
        value = getattr(settings, item.name)
        if bound is not None and not bound.allows(value):
            name = label.format(name=item.name, flag="--" + item.name.replace("_", "-"))
            raise ValueError(f"{name} = {value!r} is not allowed; expected {bound.describe()}")


def settings_from_dict(cls: type[T], data: Mapping[str, Any], what: str) -> T:
    """``cls(**data)``, refusing keys ``cls`` does not have with one line naming ``what``."""
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{what} has unknown keys {unknown}; expected some of {sorted(known)}")
    return cls(**data)
