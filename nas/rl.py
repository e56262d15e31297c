"""MnasNet's reinforcement-learning search (Tan et al. 2019, section 4.2): an LSTM controller
(:mod:`nas.controller`) samples one token per decision and is trained on the rewards.

Two update rules, chosen by ``RLConfig.method``:

* ``"ppo"`` (MnasNet's choice): Proximal Policy Optimization, Schulman et al. 2017, eq. 7 — for
  every ``batch_size`` finished samples, ``ppo_epochs`` full-batch Adam steps on the clipped
  surrogate ``min(r A, clip(r, 1 - eps, 1 + eps) A)`` with ``r`` the ratio of the sequence's
  probability now to when it was sampled, plus an entropy bonus.
* ``"reinforce"`` (Williams 1992): one Adam step on ``-A log p`` per batch, plus the same bonus.

Advantages: ``A = (reward - b) / s`` with ``b`` an exponential moving average of rewards (the
baseline of Zoph & Le 2017) and ``s`` the moving root-mean-square of ``reward - b`` when
``normalize_advantages`` (so one learning rate fits accuracy-scale and toy-scale rewards).

Tokens are canonicalized with ``space.canonicalize`` before proposing; learning uses the raw
tokens sampled and their log-probabilities. Dedup: a sample whose architecture was proposed
before is redrawn up to ``max_resamples`` times; if that architecture's reward is known it is
also added to the learning batch (a free sample, as a reward cache would give). After that the
ask falls back to a random unseen point, whose tokens are its canonical indices and whose
log-probability is evaluated under the current policy, so PPO's ratio stays correct.

Pruned outcomes (ASHA) are learned from their reward like finished ones (:class:`nas.strategy.Outcome`).
Unusable outcomes (failed, diverged, infeasible, non-finite reward) are learned as the worst
reward seen so far (the controller learns to avoid them); before any usable reward they are dropped.

State: controller weights and Adam moments as nested lists. With the default ``hidden_size``
of 32 on the 49-decision MnasNet space the controller has 16,670 parameters; the state
(weights + two Adam moments + torch RNG) is about 1.1 MB of JSON, plus about 0.5 kB per trial
(proposed set and reward cache): 1.2 MB after 200 trials, about 5 MB after MnasNet's 8,000.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from nas.controller import (Controller, decode_tensor, encode_tensor, load_module_state, load_optimizer_state,
                            module_state, optimizer_state)
from nas.ledger import LedgerStrategy
from nas.strategy import Outcome, Proposal
from search_spaces.registry import SearchSpace
from storage.settings import check_settings, setting

RL_METHODS = ("ppo", "reinforce")


@dataclass(frozen=True)
class RLConfig:
    """Controller and update settings (defaults tuned on benchmarks/bench_search_sample_efficiency.py)."""

    method: str = "ppo"
    hidden_size: int = setting(32, low=1)
    learning_rate: float = setting(0.01, kind=float, low=0, low_open=True)
    batch_size: int = setting(5, low=1)
    ppo_epochs: int = setting(2, low=1)
    clip: float = setting(0.2, kind=float, low=0, high=1, low_open=True)
    entropy_weight: float = setting(0.05, kind=float, low=0)
    baseline_decay: float = setting(0.9, kind=float, low=0, high=1, high_open=True)
    normalize_advantages: bool = True
    max_resamples: int = setting(10, low=0)
    learn_from_duplicates: bool = True

    def __post_init__(self) -> None:
        if self.method not in RL_METHODS:
            raise ValueError(f"method={self.method!r}; expected one of {RL_METHODS}")
        check_settings(self)


class RLController(LedgerStrategy):
    """LSTM controller trained by PPO or REINFORCE; see the module docstring for every rule."""

    config_class = RLConfig
    name = "rl"

    def __init__(self, *, space: SearchSpace, seed: int, config: RLConfig | None = None) -> None:
        super().__init__(space=space, seed=seed, config=config)
        self._check_method()
        self.torch_rng = torch.Generator().manual_seed(int(seed))
        self.controller = Controller(space.cardinalities, self.config.hidden_size, self.torch_rng)
        self.optimizer = torch.optim.Adam(self.controller.parameters(), lr=self.config.learning_rate)
        self.rewards: dict[tuple[int, ...], float] = {}  # canonical -> reward learned from
        self.batch: list[tuple[list[int], float, float]] = []  # (tokens, log-prob at sampling, reward)
        self.baseline: float | None = None
        self.deviation_sq = 0.0
        self.worst_seen: float | None = None
        self.updates = 0

    def _check_method(self) -> None:
        """Hook for subclasses that fix the method (``ReinforceController``)."""

    # -- ask / tell ---------------------------------------------------------------
    def ask(self) -> Proposal | None:
        self.ledger.check_not_exhausted()
        for _ in range(self.config.max_resamples + 1):
            tokens, log_prob = self.controller.sample(self.torch_rng)
            canonical = self.space.canonicalize(tokens)
            if canonical not in self.ledger.seen:
                return self.ledger.issue(canonical, {"tokens": list(tokens), "log_prob": log_prob})
            if self.config.learn_from_duplicates and canonical in self.rewards:
                self._learn(list(tokens), log_prob, self.rewards[canonical])
        canonical = self.ledger.random_unseen(self.rng)
        with torch.no_grad():
            log_prob = float(self.controller.evaluate(torch.tensor([canonical]))[0][0])
        return self.ledger.issue(canonical, {"tokens": list(canonical), "log_prob": log_prob})

    def tell(self, proposal_id: str, outcome: Outcome) -> None:
        canonical, data = self.ledger.pop(proposal_id)
        if outcome.usable:
            reward = float(outcome.reward)
            self.worst_seen = reward if self.worst_seen is None else min(self.worst_seen, reward)
        elif self.worst_seen is not None:
            reward = self.worst_seen
        else:
            return  # nothing to compare a failure with yet: dropped from learning
        self.rewards[canonical] = reward
        self._learn(data["tokens"], data["log_prob"], reward)

    # -- learning -----------------------------------------------------------------
    def _learn(self, tokens: list[int], log_prob: float, reward: float) -> None:
        self.batch.append((tokens, log_prob, reward))
        if len(self.batch) >= self.config.batch_size:
            self._update(self.batch)
            self.batch = []

    def _advantages(self, rewards: torch.Tensor) -> torch.Tensor:
        """(reward - moving-average baseline) / moving RMS deviation; then the averages move on."""
        decay = self.config.baseline_decay
        if self.baseline is None:
            self.baseline = float(rewards.mean())
            self.deviation_sq = float(((rewards - self.baseline) ** 2).mean())
        advantages = rewards - self.baseline
        if self.config.normalize_advantages:
            advantages = advantages / math.sqrt(self.deviation_sq + 1e-12)
        for reward in rewards.tolist():
            self.deviation_sq = decay * self.deviation_sq + (1 - decay) * (reward - self.baseline) ** 2
            self.baseline = decay * self.baseline + (1 - decay) * reward
        return advantages

    def _update(self, batch: list[tuple[list[int], float, float]]) -> None:
        tokens = torch.tensor([b[0] for b in batch], dtype=torch.long)
        old_log_prob = torch.tensor([b[1] for b in batch], dtype=torch.float32)
        advantages = self._advantages(torch.tensor([b[2] for b in batch], dtype=torch.float64)).float()
        epochs = self.config.ppo_epochs if self.config.method == "ppo" else 1
        for _ in range(epochs):
            log_prob, entropy = self.controller.evaluate(tokens)
            if self.config.method == "ppo":
                ratio = torch.exp(log_prob - old_log_prob)
                clipped = torch.clamp(ratio, 1 - self.config.clip, 1 + self.config.clip)
                objective = torch.minimum(ratio * advantages, clipped * advantages)
            else:
                objective = log_prob * advantages
            loss = -objective.mean() - self.config.entropy_weight * entropy.mean()
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
        self.updates += 1

    # -- state ----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {**self.common_state(), "torch_rng": encode_tensor(self.torch_rng.get_state()), "controller": module_state(self.controller),
                "optimizer": optimizer_state(self.optimizer),
                "rewards": [[list(k), v] for k, v in self.rewards.items()],
                "batch": [[list(t), lp, r] for t, lp, r in self.batch],
                "baseline": self.baseline, "deviation_sq": self.deviation_sq,
                "worst_seen": self.worst_seen, "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.load_common_state(state)
        self.torch_rng.set_state(decode_tensor(state["torch_rng"], torch.uint8))
        load_module_state(self.controller, state["controller"])
        load_optimizer_state(self.optimizer, state["optimizer"])
        self.rewards = {tuple(k): float(v) for k, v in state["rewards"]}
        self.batch = [(list(t), float(lp), float(r)) for t, lp, r in state["batch"]]
        self.baseline, self.deviation_sq = state["baseline"], float(state["deviation_sq"])
        self.worst_seen, self.updates = state["worst_seen"], int(state["updates"])


@dataclass(frozen=True)
class ReinforceConfig(RLConfig):
    """:class:`RLConfig` with REINFORCE as the default method and its own tuned step size and batch."""

    method: str = "reinforce"
    learning_rate: float = 0.03
    batch_size: int = 10
    entropy_weight: float = 0.01


class ReinforceController(RLController):
    """The light option: the same controller trained by REINFORCE with a moving-average baseline."""

    config_class = ReinforceConfig
    name = "reinforce"

    def _check_method(self) -> None:
        if self.config.method != "reinforce":
            raise ValueError(f"method={self.config.method!r} for strategy 'reinforce'; expected 'reinforce' (use 'rl' for PPO)")
