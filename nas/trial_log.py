"""The search's trial log ``trials.csv``: one append-only row per finished trial.

A row is written (fsynced, through :class:`storage.statefiles.CsvLog`) before the strategy
hears the outcome, so the log is the ground truth of what was evaluated: a resumed search
counts, rebuilds and reports from it (MnasNet section 4: every sampled model's accuracy and
latency are what the controller learns from and what the Pareto front is drawn from).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import pandas as pd

from storage.statefiles import CsvLog
from storage.status import EARLIER_WORDS, TRIAL_STATUSES, Status, parse_status

TRIALS_FILE = "trials.csv"


@dataclass(frozen=True)
class TrialRecord:
    """One finished trial: the candidate (canonical spec string and decision indices), its
    predicted latency, proxy validation top-1 with its binomial standard error, and reward."""

    trial: int
    trial_id: str
    proposal_id: str
    spec: str
    decisions: str
    latency_ms: float
    top1: float
    top1_stderr: float
    reward: float
    status: Status
    """``pruned``: stopped by ASHA at a lower rung (its top-1 is from fewer epochs); ``ok`` and
    ``early_stopped`` in files of earlier versions read as ``finished`` and ``pruned``."""
    epochs: int
    wall_s: float
    message: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", parse_status(self.status, TRIAL_STATUSES, "trial status"))


COLUMNS = tuple(f.name for f in fields(TrialRecord))


def format_decisions(indices: tuple[int, ...] | list[int]) -> str:
    return " ".join(str(int(i)) for i in indices)


def parse_decisions(text: str) -> tuple[int, ...]:
    text = "" if text is None or (isinstance(text, float) and math.isnan(text)) else str(text)
    return tuple(int(t) for t in text.split())


class TrialLog:
    """``trials.csv`` in a run folder: append records, read them back as records or a frame."""

    def __init__(self, folder: str | Path) -> None:
        self.log = CsvLog(Path(folder) / TRIALS_FILE, COLUMNS)

    @property
    def path(self) -> Path:
        return self.log.path

    def append(self, record: TrialRecord) -> None:
        self.log.append([asdict(record)])

    def frame(self) -> pd.DataFrame:
        """The log as a DataFrame (empty with the columns when there is none yet)."""
        frame = self.log.read()
        for name in ("spec", "decisions", "trial_id", "proposal_id", "status", "message"):
            frame[name] = frame[name].astype(object).fillna("").astype(str)
        frame["status"] = frame["status"].replace({word: status.value for word, status in EARLIER_WORDS.items()})
        return frame

    def records(self) -> list[TrialRecord]:
        return [_record(row) for row in self.frame().to_dict("records")]


def _record(row: dict) -> TrialRecord:
    floats = ("latency_ms", "top1", "top1_stderr", "reward", "wall_s")
    values = {name: row[name] for name in COLUMNS}
    values.update({name: float(row[name]) for name in floats})
    values["trial"], values["epochs"] = int(row["trial"]), int(row["epochs"])
    return TrialRecord(**values)
