"""The one status vocabulary of runs and trials, after Optuna's trial states.

A run folder (``manifest.json``), a pipeline stage, a search trial (``trials.csv``), a
candidate's evaluation and a strategy's outcome all say what became of them with a
:class:`Status`; each kind allows the subset that can happen to it (:data:`RUN_STATUSES`,
:data:`TRIAL_STATUSES`). Files written by earlier versions still read: their words are mapped
by :data:`EARLIER_WORDS`.
"""
from __future__ import annotations

import enum
from typing import Iterable


class Status(enum.StrEnum):
    """What became of a run or a trial."""

    RUNNING = "running"
    """In progress (a run whose process is gone reads as ``killed``)."""
    FINISHED = "finished"
    """Done as asked (Optuna's COMPLETE): a run's results, a trial's full-budget score."""
    PRUNED = "pruned"
    """Stopped early by a scheduler (ASHA) as not promising; its score is from fewer epochs."""
    FAILED = "failed"
    """Raised an error; a run resumes once the cause is fixed."""
    DIVERGED = "diverged"
    """Training diverged (loss non-finite or exploding): final for its settings."""
    INFEASIBLE = "infeasible"
    """The candidate cannot be built for the task (e.g. its strides do not fit the input)."""
    INTERRUPTED = "interrupted"
    """Stopped on request (Ctrl-C, SIGTERM) at a safe point; resumes."""
    KILLED = "killed"
    """A run left ``running`` by a process that no longer exists; resumes."""


RUN_STATUSES = (Status.RUNNING, Status.INTERRUPTED, Status.FINISHED, Status.FAILED, Status.DIVERGED, Status.KILLED)
TRIAL_STATUSES = (Status.FINISHED, Status.PRUNED, Status.FAILED, Status.DIVERGED, Status.INFEASIBLE)
SCORED = (Status.FINISHED, Status.PRUNED)
"""Trials with a validation score (a pruned one's from the epochs it reached)."""
EARLIER_WORDS = {"ok": Status.FINISHED, "completed": Status.FINISHED, "early_stopped": Status.PRUNED}
"""Words earlier versions wrote, read as today's."""


def parse_status(value: object, allowed: Iterable[Status] = tuple(Status), what: str = "status") -> Status:
    """``value`` (a :class:`Status`, today's word or an earlier one) as a Status among ``allowed``;
    ValueError naming ``what``, the value and the allowed words otherwise."""
    allowed = tuple(allowed)
    if isinstance(value, str):
        status = EARLIER_WORDS.get(value) or next((s for s in Status if s.value == value), None)
        if status in allowed:
            return status
    raise ValueError(f"{what} {value!r} is not allowed; expected one of {[s.value for s in allowed]}")


def words_for(statuses: Iterable[Status]) -> tuple[str, ...]:
    """Every word a file may hold for ``statuses``: today's and earlier versions' (for tables read
    as they are, e.g. ``trials["status"].isin(words_for(SCORED))``)."""
    statuses = tuple(statuses)
    return tuple(s.value for s in statuses) + tuple(w for w, s in EARLIER_WORDS.items() if s in statuses)
