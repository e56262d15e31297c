"""Tensors that outlive the process: :func:`save_torch` writes through
:func:`storage.statefiles.write_bytes_atomic` (a kill or a full disk never leaves a truncated
file), :func:`load_torch` reads with ``weights_only=True`` (plain dicts of tensors and numbers,
never pickled code) and turns every failure into one line naming the file."""
from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import torch

from storage.statefiles import write_bytes_atomic


def save_torch(path: str | Path, state: Any) -> Path:
    """Write ``state`` (tensors moved to CPU memory as torch.save stores them) atomically."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    write_bytes_atomic(path, buffer.getvalue())
    return Path(path)


def _reason(exc: Exception, what: str) -> str:
    """A one-line reason for an unreadable file, without torch's advice to load it with
    ``weights_only=False`` (that would run pickled code)."""
    if isinstance(exc, pickle.UnpicklingError) and "global" in str(exc):
        return "it holds Python objects other than tensors and numbers (refused: state files never run pickled code)"
    if isinstance(exc, EOFError):
        return "it is empty or truncated"
    detail = str(exc).strip().split(". ")[0].splitlines()[0] if isinstance(exc, RuntimeError) and str(exc).strip() else ""
    return f"it is truncated, corrupt or not a torch {what}" + (f" ({detail})" if detail else "")


def load_torch(path: str | Path, *, what: str = "torch file", expect: type | None = dict) -> Any:
    """What :func:`save_torch` wrote (tensors mapped to CPU); FileNotFoundError or ValueError of one
    line naming the file (``what`` says what it should be) when missing, unreadable or not ``expect``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {str(path)!r} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for truncated or foreign files
        raise ValueError(f"{what} {str(path)!r} cannot be read: {_reason(exc, what)}") from None
    if expect is not None and not isinstance(state, expect):
        raise ValueError(f"{what} {str(path)!r} holds {type(state).__name__}; expected {expect.__name__}")
    return state
