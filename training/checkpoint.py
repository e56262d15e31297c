"""Checkpoints: plain dicts of tensors and numbers written with ``torch.save`` and read back
with ``weights_only=True`` (no pickled code), through :mod:`storage.torchfiles`: written
atomically (temp file, fsync, rename) so a kill or a full disk while saving never leaves a
truncated checkpoint."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from storage.torchfiles import load_torch, save_torch

FORMAT_VERSION = 1
REQUIRED_KEYS = ("format_version", "spec", "config", "model", "optimizer", "scheduler", "step", "epoch_state", "metrics")


def save_checkpoint(state: dict[str, Any], path: str | Path) -> Path:
    """Write ``state`` (see :data:`REQUIRED_KEYS`) to ``path`` atomically; on failure (e.g. a full
    disk) the previous checkpoint stays."""
    missing = [k for k in REQUIRED_KEYS if k not in state]
    if missing:
        raise ValueError(f"checkpoint state lacks keys {missing}")
    return save_torch(path, state)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (tensors mapped to CPU)."""
    state = load_torch(path, what="checkpoint", expect=None)
    if not isinstance(state, dict) or state.get("format_version") != FORMAT_VERSION:
        found = state.get("format_version") if isinstance(state, dict) else type(state).__name__
        raise ValueError(f"checkpoint {str(path)!r} has format {found!r}; expected format_version {FORMAT_VERSION}")
    missing = [k for k in REQUIRED_KEYS if k not in state]
    if missing:
        raise ValueError(f"checkpoint {str(path)!r} lacks keys {missing}")
    return state
