"""Random search: the baseline every search paper compares against (MnasNet section 6.2,
Real et al. 2019 section 4, Bender et al. 2020 all report it).

Each ask draws one choice per decision uniformly at random (``space.sample_indices``) and
canonicalizes it; a point proposed before is redrawn, so no architecture is proposed twice.
This is uniform over index vectors, not over distinct architectures (an architecture with
several encodings is proportionally more likely), as in the papers' baselines. Outcomes, usable
or not, only retire the pending proposal: random search learns nothing.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nas.ledger import LedgerStrategy
from nas.strategy import Outcome, Proposal
from search_spaces.registry import SearchSpace


@dataclass(frozen=True)
class RandomSearchConfig:
    """Random search has no settings; the class exists so every strategy takes a config."""


class RandomSearch(LedgerStrategy):
    """Uniform random sampling of unseen canonical points.

    Raises ``nas.strategy.SpaceExhausted`` from :meth:`ask` once every architecture was proposed.
    """

    config_class = RandomSearchConfig
    name = "random"

    def __init__(self, *, space: SearchSpace, seed: int, config: RandomSearchConfig | None = None) -> None:
        super().__init__(space=space, seed=seed, config=config)
        self.told = 0

    def ask(self) -> Proposal | None:
        return self.ledger.issue(self.ledger.random_unseen(self.rng))

    def tell(self, proposal_id: str, outcome: Outcome) -> None:
        self.ledger.pop(proposal_id)
        self.told += 1

    def state_dict(self) -> dict[str, Any]:
        return {**self.common_state(), "told": self.told}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.load_common_state(state)
        self.told = int(state["told"])
