"""NetAdapt's crash-safe state in a run folder: one checkpoint per finished iteration.

An iteration is committed in this order, each write atomic (temp file, fsync, rename):

1. ``models/iter-NNNN.json``: the chosen spec (versioned JSON);
2. ``models/iter-NNNN.pt``: its weights (a plain state dict, read with ``weights_only=True``);
3. ``state.json``: the loop state naming iteration NNNN, its history rows included.

``state.json`` is the commit point: a SIGKILL before step 3 leaves the previous state and at
worst two orphan files that the next commit of that iteration overwrites; after step 3 the
iteration is kept. ``history.csv`` is derived from the state (rows appended after the commit,
missing ones re-appended on resume), so it never holds a row of an uncommitted iteration.
Weights of iterations older than the previous one are deleted after a commit.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from search_spaces.encoding import spec_from_dict, spec_to_dict
from search_spaces.spec import ArchSpec
from storage.statefiles import CsvLog, read_json, write_json
from storage.torchfiles import load_torch, save_torch

STATE_FILE, HISTORY_FILE, MODELS = "state.json", "history.csv", "models"
SCHEMA_VERSION = 1
PHASES = ("adapt", "long", "done")
HISTORY_COLUMNS = ("iteration", "label", "kind", "layers", "channels_before", "channels_after", "predicted_ms",
                   "measured_ms", "val_top1", "val_top1_stderr", "score", "chosen")
_NUMBER = (float, type(None))  # NaN is written as null
STATE_FIELDS = {"schema_version": int, "iteration": int, "phase": str, "l0_ms": float, "predicted_ms": float,
                "measured_ms": _NUMBER, "top1": _NUMBER, "elapsed_s": float, "history": list}


@dataclass(frozen=True)
class LoopState:
    """Where the loop stands after ``iteration`` finished iterations (0: the start model).

    ``top1`` is the current model's validation top-1 (the reference of the next selection),
    ``history`` every row written to ``history.csv`` so far (dicts with HISTORY_COLUMNS).
    """

    iteration: int
    phase: str
    l0_ms: float
    predicted_ms: float
    measured_ms: float
    top1: float
    top1_stderr: float = float("nan")
    elapsed_s: float = 0.0
    history: tuple[dict[str, Any], ...] = field(default_factory=tuple)

    def advance(self, **changes: Any) -> "LoopState":
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["history"] = [dict(row) for row in self.history]
        return {"schema_version": SCHEMA_VERSION, **data}


def _float(value: Any) -> float:
    return float("nan") if value is None else float(value)


def state_from_dict(data: dict[str, Any]) -> LoopState:
    if data["phase"] not in PHASES:
        raise ValueError(f"netadapt state phase = {data['phase']!r} is not allowed; expected one of {PHASES}")
    return LoopState(iteration=data["iteration"], phase=data["phase"], l0_ms=_float(data["l0_ms"]),
                     predicted_ms=_float(data["predicted_ms"]), measured_ms=_float(data["measured_ms"]),
                     top1=_float(data["top1"]), top1_stderr=_float(data.get("top1_stderr")),
                     elapsed_s=_float(data["elapsed_s"]), history=tuple(dict(r) for r in data["history"]))


def save_weights(path: Path, weights: dict[str, torch.Tensor]) -> None:
    save_torch(path, {k: v.detach().cpu() for k, v in weights.items()})


def load_weights(path: Path) -> dict[str, torch.Tensor]:
    return load_torch(path, what="weights file")


class LoopStore:
    """The state files of one NetAdapt run in ``folder``; see the module docstring."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.history = CsvLog(self.folder / HISTORY_FILE, HISTORY_COLUMNS)

    def _model_path(self, iteration: int, suffix: str) -> Path:  # models/iter-NNNN.json|.pt
        return self.folder / MODELS / f"iter-{iteration:04d}{suffix}"

    def exists(self) -> bool:
        return (self.folder / STATE_FILE).is_file()

    def commit(self, state: LoopState, spec: ArchSpec, weights: dict[str, torch.Tensor]) -> None:
        """Make ``state`` (with its model) the one a resume starts from; see the module docstring."""
        (self.folder / MODELS).mkdir(parents=True, exist_ok=True)
        write_json(self._model_path(state.iteration, ".json"), spec_to_dict(spec))
        save_weights(self._model_path(state.iteration, ".pt"), weights)
        write_json(self.folder / STATE_FILE, state.to_dict())
        self.sync_history(state)
        for old in (self.folder / MODELS).glob("iter-*.pt"):
            if int(old.stem.split("-")[1]) < state.iteration - 1:
                old.unlink(missing_ok=True)

    def commit_final(self, state: LoopState, spec: ArchSpec, weights: dict[str, torch.Tensor]) -> None:
        """Commit the long-term fine-tuned model (``models/final.*``) with ``state.phase == "done"``."""
        write_json(self.folder / MODELS / "final.json", spec_to_dict(spec))
        save_weights(self.folder / MODELS / "final.pt", weights)
        write_json(self.folder / STATE_FILE, state.to_dict())

    def update(self, state: LoopState) -> None:
        """Write ``state`` for the model already committed for its iteration (a phase change)."""
        write_json(self.folder / STATE_FILE, state.to_dict())

    def load(self) -> tuple[LoopState, ArchSpec, dict[str, torch.Tensor]]:
        data = read_json(self.folder / STATE_FILE, fields=STATE_FIELDS, schema_version=SCHEMA_VERSION,
                         what="NetAdapt loop state")
        state = state_from_dict(data)
        stem = "final" if state.phase == "done" else f"iter-{state.iteration:04d}"
        spec = spec_from_dict(read_json(self.folder / MODELS / f"{stem}.json", what="spec of a NetAdapt iteration"))
        weights = load_weights(self.folder / MODELS / f"{stem}.pt")
        self.sync_history(state)
        return state, spec, weights

    def sync_history(self, state: LoopState) -> int:
        """Append the rows of ``state.history`` that ``history.csv`` lacks; returns how many."""
        frame = self.history.read()
        present = {(int(i), str(label)) for i, label in zip(frame["iteration"], frame["label"])}
        missing = [row for row in state.history if (int(row["iteration"]), str(row["label"])) not in present]
        if missing:
            self.history.append(missing)
        return len(missing)
