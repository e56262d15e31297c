"""Checkpoints: plain dicts of tensors and numbers written with ``torch.save`` and read back
with ``weights_only=True`` (no pickled code). Written atomically (temp file, fsync, rename) so
a kill or a full disk while saving never leaves a truncated checkpoint."""
from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import torch

FORMAT_VERSION = 1
REQUIRED_KEYS = ("format_version", "spec", "config", "model", "optimizer", "scheduler", "step", "epoch_state", "metrics")


def save_checkpoint(state: dict[str, Any], path: str | Path) -> Path:
    """Write ``state`` (see :data:`REQUIRED_KEYS`) to ``path`` atomically."""
    path = Path(path)
    missing = [k for k in REQUIRED_KEYS if k not in state]
    if missing:
        raise ValueError(f"checkpoint state lacks keys {missing}")
    temporary = path.with_name(path.name + ".tmp")
    try:
        with temporary.open("wb") as handle:
            torch.save(state, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except OSError as exc:  # e.g. a full disk: the previous checkpoint stays
        temporary.unlink(missing_ok=True)
        raise OSError(exc.errno, f"cannot write checkpoint {path}: {exc.strerror or exc}; the previous checkpoint "
                                 "is unchanged") from None
    return path


def _reason(exc: Exception) -> str:
    """A one-line reason for an unreadable checkpoint, without torch's advice to load it with
    ``weights_only=False`` (that would run pickled code)."""
    if isinstance(exc, pickle.UnpicklingError) and "global" in str(exc):
        return "it holds Python objects other than tensors and numbers (refused: checkpoints never run pickled code)"
    if isinstance(exc, EOFError):
        return "it is empty or truncated"
    detail = str(exc).strip().split(". ")[0].splitlines()[0] if isinstance(exc, RuntimeError) and str(exc).strip() else ""
    return "it is truncated, corrupt or not a torch checkpoint" + (f" ({detail})" if detail else "")


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (tensors mapped to CPU)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for truncated or foreign files
        raise ValueError(f"checkpoint {str(path)!r} cannot be read: {_reason(exc)}") from None
    if not isinstance(state, dict) or state.get("format_version") != FORMAT_VERSION:
        found = state.get("format_version") if isinstance(state, dict) else type(state).__name__
        raise ValueError(f"checkpoint {str(path)!r} has format {found!r}; expected format_version {FORMAT_VERSION}")
    missing = [k for k in REQUIRED_KEYS if k not in state]
    if missing:
        raise ValueError(f"checkpoint {str(path)!r} lacks keys {missing}")
    return state
