"""Settings dataclasses read back from state files (STYLE.md section 5: unknown keys are an error)."""
from __future__ import annotations

from dataclasses import fields
from typing import Any, Mapping, TypeVar

T = TypeVar("T")


def settings_from_dict(cls: type[T], data: Mapping[str, Any], what: str) -> T:
    """``cls(**data)``, refusing keys ``cls`` does not have with one line naming ``what``."""
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{what} has unknown keys {unknown}; expected some of {sorted(known)}")
    return cls(**data)
