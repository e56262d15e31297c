"""Regularized (aging) evolution, Real et al. 2019 ("Regularized Evolution for Image Classifier
Architecture Search", section 2, Algorithm 1).

A population of the ``population_size`` most recently *finished* proposals is kept. The first
``population_size`` asks are random; after that each ask samples ``sample_size`` members
uniformly with replacement, mutates the best of the sample (``space.mutate_indices``, one
decision changed) and proposes the child. Every finished proposal joins the population and the
oldest member dies, so every architecture has a bounded lifetime however good it was.

Asynchronous use (several proposals outstanding, as with a Ray Tune driver): asks never wait.
While the population is empty, or fewer than ``population_size`` proposals were issued, asks are
random; afterwards tournaments run over whatever has finished.

Dedup: a child that was proposed before is mutated again from the same parent, up to
``max_mutation_tries`` times; then the ask falls back to a random unseen point.

Pruned outcomes (ASHA) join with their reward like finished ones (:class:`nas.strategy.Outcome`).
Unusable outcomes (failed, diverged, infeasible, non-finite reward) join the population with no
reward: they rank below every finished model, age out like any member, and a tournament whose
sample holds only such members proposes a random unseen point instead of mutating one.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

from nas.ledger import LedgerStrategy
from nas.strategy import Outcome, Proposal
from search_spaces.registry import SearchSpace


@dataclass(frozen=True)
class EvolutionConfig:
    """Population P and tournament sample S. Real et al. used P = 100, S = 25 for 20k models; the
    defaults are the best of a grid on the 200-trial benchmark (results/search/README.md)."""

    population_size: int = 20
    sample_size: int = 10
    max_mutation_tries: int = 20

    def __post_init__(self) -> None:
        if not (isinstance(self.population_size, int) and self.population_size >= 2):
            raise ValueError(f"population_size={self.population_size!r}; expected an integer >= 2")
        if not (isinstance(self.sample_size, int) and 1 <= self.sample_size <= self.population_size):
            raise ValueError(f"sample_size={self.sample_size!r}; expected an integer in [1, population_size={self.population_size}]")
        if not (isinstance(self.max_mutation_tries, int) and self.max_mutation_tries >= 1):
            raise ValueError(f"max_mutation_tries={self.max_mutation_tries!r}; expected an integer >= 1")


class RegularizedEvolution(LedgerStrategy):
    """Aging evolution over canonical index vectors; see the module docstring for the rules."""

    config_class = EvolutionConfig
    name = "evolution"

    def __init__(self, *, space: SearchSpace, seed: int, config: EvolutionConfig | None = None) -> None:
        super().__init__(space=space, seed=seed, config=config)
        # (indices, reward or None for an unusable outcome), oldest first
        self.population: deque[tuple[tuple[int, ...], float | None]] = deque()

    def ask(self) -> Proposal | None:
        self.ledger.check_not_exhausted()
        child = None
        if self.ledger.issued >= self.config.population_size and self.population:
            parent = self._tournament()
            if parent is not None:
                child = self._unseen_mutation(parent)
        if child is None:
            child = self.ledger.random_unseen(self.rng)
        return self.ledger.issue(child)

    def tell(self, proposal_id: str, outcome: Outcome) -> None:
        indices, _ = self.ledger.pop(proposal_id)
        self.population.append((indices, float(outcome.reward) if outcome.usable else None))
        if len(self.population) > self.config.population_size:
            self.population.popleft()  # the oldest dies, not the worst (Real et al. 2019)

    def _tournament(self) -> tuple[int, ...] | None:
        """Best of ``sample_size`` members drawn with replacement; None if all are unusable."""
        picks = self.rng.integers(len(self.population), size=self.config.sample_size)
        sample = [self.population[int(i)] for i in picks]
        scored = [(reward, indices) for indices, reward in sample if reward is not None]
        if not scored:
            return None
        return max(scored, key=lambda item: item[0])[1]  # first best on ties: sample order

    def _unseen_mutation(self, parent: tuple[int, ...]) -> tuple[int, ...] | None:
        for _ in range(self.config.max_mutation_tries):
            child = self.space.mutate_indices(parent, self.rng)
            if child not in self.ledger.seen:
                return child
        return None

    def state_dict(self) -> dict[str, Any]:
        return {**self.common_state(),
                "population": [[list(indices), reward] for indices, reward in self.population]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.load_common_state(state)
        self.population = deque((tuple(indices), reward) for indices, reward in state["population"])
