"""The ask/tell interface every search strategy implements (ARCHITECTURE.md).

A strategy proposes points of a :class:`search_spaces.registry.SearchSpace` as canonical index
vectors and learns from the outcomes it is told. It never trains, measures, sleeps, prints or
writes files: a driver (in-process loop, or Ray Tune through ``nas.tune``) owns the loop.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from storage.status import SCORED, TRIAL_STATUSES, Status, parse_status



class SpaceExhausted(Exception):
    """Raised by ``ask`` when every architecture of the space has already been proposed.

    A driver stops asking (Ray Tune: ``Searcher.FINISHED``); outstanding proposals may still be told.
    """


@dataclass(frozen=True)
class Proposal:
    """One candidate: a strategy-unique id and the canonical decision indices."""

    proposal_id: str
    indices: tuple[int, ...]


@dataclass(frozen=True)
class Outcome:
    """What came of a proposal (a :class:`storage.status.Status` among the trial statuses; a
    string is read as one). ``reward`` is finite for ``finished`` and ``pruned``; for any other
    status the strategy substitutes its worst reward (a failed trial never raises inside the loop).

    A ``pruned`` outcome (stopped early by ASHA) carries the reward of the epochs it reached and is
    learned from as it is, like a finished one: ASHA stops a trial because it ranks below its
    peers at the same rung, which that reward says; learning it as a failure would teach a
    controller that a merely weaker architecture is as bad as one that cannot be trained.
    """

    reward: float
    status: Status = Status.FINISHED
    top1: float = math.nan
    latency_ms: float = math.nan

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", parse_status(self.status, TRIAL_STATUSES, "outcome status"))

    @property
    def usable(self) -> bool:
        """True when the reward can be learned from as it is (finished or pruned, finite reward)."""
        return self.status in SCORED and self.reward is not None and math.isfinite(self.reward)


@runtime_checkable
class Strategy(Protocol):
    """Seeded ask/tell search strategy with a JSON-safe state."""

    def ask(self) -> Proposal | None:
        """The next proposal, or None to wait for outstanding results."""

    def tell(self, proposal_id: str, outcome: Outcome) -> None:
        """Report the outcome of an earlier proposal (each id is told once)."""

    def state_dict(self) -> dict[str, Any]:
        """JSON-safe state, RNG included: ``load_state_dict`` on a fresh instance continues identically."""

    def load_state_dict(self, state: dict[str, Any]) -> None: ...
