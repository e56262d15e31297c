"""Bookkeeping every strategy shares: proposal ids, pending proposals, dedup, random unseen points.

A :class:`ProposalLedger` remembers every canonical index tuple ever proposed, so no strategy
proposes an architecture twice; when random draws keep hitting seen points in a small space it
enumerates the space, and when nothing is left it raises :class:`nas.strategy.SpaceExhausted`.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import asdict
from typing import Any

import numpy as np

from nas.strategy import Proposal, SpaceExhausted
from search_spaces.registry import SearchSpace

RANDOM_TRIES = 200          # random draws before enumerating the (small) space
ENUMERATION_LIMIT = 100_000  # index vectors; larger spaces are never close to exhaustion in practice


def new_rng(seed: int) -> np.random.Generator:
    """A seeded PCG64 generator (its ``bit_generator.state`` is a JSON-safe dict)."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed={seed!r}; expected an integer >= 0")
    return np.random.Generator(np.random.PCG64(int(seed)))


def rng_state(rng: np.random.Generator) -> dict[str, Any]:
    return rng.bit_generator.state


def set_rng_state(rng: np.random.Generator, state: dict[str, Any]) -> None:
    rng.bit_generator.state = state


class ProposalLedger:
    """Issued ids, pending proposals (with strategy data) and the set of proposed points."""

    def __init__(self, space: SearchSpace, prefix: str) -> None:
        self.space = space
        self.prefix = prefix
        self.issued = 0
        self.pending: dict[str, tuple[tuple[int, ...], dict[str, Any]]] = {}
        self.seen: set[tuple[int, ...]] = set()
        self._size: int | None = None
        self._all_points: list[tuple[int, ...]] | None = None

    @property
    def size(self) -> int:
        if self._size is None:
            self._size = int(self.space.size())
        return self._size

    def exhausted(self) -> bool:
        return len(self.seen) >= self.size

    def check_not_exhausted(self) -> None:
        if self.exhausted():
            raise SpaceExhausted(f"all {self.size} architectures of the space have been proposed")

    def issue(self, indices: tuple[int, ...], data: dict[str, Any] | None = None) -> Proposal:
        """Record ``indices`` (canonical, unseen) as a new pending proposal."""
        if indices in self.seen:
            raise ValueError(f"indices {indices} were already proposed")
        proposal = Proposal(f"{self.prefix}-{self.issued}", tuple(int(i) for i in indices))
        self.issued += 1
        self.seen.add(proposal.indices)
        self.pending[proposal.proposal_id] = (proposal.indices, dict(data or {}))
        return proposal

    def pop(self, proposal_id: str) -> tuple[tuple[int, ...], dict[str, Any]]:
        """Remove and return a pending proposal; an unknown or already-told id raises ValueError."""
        if proposal_id not in self.pending:
            raise ValueError(f"proposal id {proposal_id!r} is not pending (unknown or already told)")
        return self.pending.pop(proposal_id)

    def random_unseen(self, rng: np.random.Generator) -> tuple[int, ...]:
        """A random canonical point not proposed before (uniform per decision, as the space samples).

        Raises:
            SpaceExhausted: every architecture has been proposed.
        """
        self.check_not_exhausted()
        for _ in range(RANDOM_TRIES):
            candidate = self.space.sample_indices(rng)
            if candidate not in self.seen:
                return candidate
        unseen = [p for p in self._enumerate() if p not in self.seen]
        return unseen[int(rng.integers(len(unseen)))]

    def _enumerate(self) -> list[tuple[int, ...]]:
        if self._all_points is None:
            cards = self.space.cardinalities
            if math.prod(cards) > ENUMERATION_LIMIT:
                raise RuntimeError(f"{RANDOM_TRIES} random draws all hit proposed architectures and the space "
                                   f"({math.prod(cards)} index vectors) is too large to enumerate")
            points = {self.space.canonicalize(c) for c in itertools.product(*(range(n) for n in cards))}
            self._all_points = sorted(points)
        return self._all_points

    def state_dict(self) -> dict[str, Any]:
        return {"issued": self.issued,
                "pending": [[pid, list(indices), data] for pid, (indices, data) in self.pending.items()],
                "seen": sorted(list(p) for p in self.seen)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.issued = int(state["issued"])
        self.pending = {pid: (tuple(indices), dict(data)) for pid, indices, data in state["pending"]}
        self.seen = {tuple(p) for p in state["seen"]}


class LedgerStrategy:
    """What every built-in strategy keeps: its space, seed and config (``config_class``'s
    defaults when none), its own RNG and :class:`ProposalLedger`, and their part of the state
    (tagged with the strategy's ``name``, refused when loaded into another strategy)."""

    name: str
    config_class: type

    def __init__(self, *, space: SearchSpace, seed: int, config: Any = None) -> None:
        self.space, self.seed = space, seed
        self.config = config or self.config_class()
        self.rng = new_rng(seed)
        self.ledger = ProposalLedger(space, self.name)

    def common_state(self) -> dict[str, Any]:
        return {"strategy": self.name, "seed": self.seed, "config": asdict(self.config), "rng": rng_state(self.rng),
                "ledger": self.ledger.state_dict()}

    def load_common_state(self, state: dict[str, Any]) -> None:
        if state.get("strategy") != self.name:
            raise ValueError(f"state of strategy {state.get('strategy')!r} cannot be loaded into {self.name!r}")
        self.seed = int(state["seed"])
        set_rng_state(self.rng, state["rng"])
        self.ledger.load_state_dict(state["ledger"])
