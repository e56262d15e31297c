"""Checkpoints: plain dicts of tensors and numbers written with ``torch.save`` and read back
with ``weights_only=True`` (no pickled code). Written atomically (temp file + rename) so an
interrupt while saving never leaves a truncated checkpoint."""
from __future__ import annotations

import os
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
    torch.save(state, temporary)
    os.replace(temporary, path)
    return path


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (tensors mapped to CPU)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for truncated or foreign files
        raise ValueError(f"checkpoint {str(path)!r} cannot be read: {exc}") from exc
    if not isinstance(state, dict) or state.get("format_version") != FORMAT_VERSION:
        found = state.get("format_version") if isinstance(state, dict) else type(state).__name__
        raise ValueError(f"checkpoint {str(path)!r} has format {found!r}; expected format_version {FORMAT_VERSION}")
    missing = [k for k in REQUIRED_KEYS if k not in state]
    if missing:
        raise ValueError(f"checkpoint {str(path)!r} lacks keys {missing}")
    return state
