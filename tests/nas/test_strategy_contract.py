"""The ask/tell contract (CONTRIBUTING.md, Style), run over every registered strategy."""
import json
import math

import numpy as np
import pytest

from nas.registry import STRATEGIES, make_strategy
from nas.strategy import Outcome, SpaceExhausted, Strategy
from search_spaces.mnasnet_space import MnasNetSpace

NAMES = sorted(STRATEGIES)
FULL = MnasNetSpace(resolution=32, num_classes=10)
TINY = MnasNetSpace(resolution=32, num_classes=10, stages=((16, 1, 1),))  # 7 decisions, 224 architectures
THREE = MnasNetSpace(resolution=32, num_classes=10, stages=((16, 1, 1), (24, 2, 2), (40, 2, 2)))
BAD_OUTCOMES = (Outcome(math.nan), Outcome(math.inf), Outcome(-math.inf), Outcome(0.9, "failed"),
                Outcome(0.9, "diverged"), Outcome(0.9, "infeasible"))


def toy_reward(indices, seed=7):
    """Additive closed-form reward: a fixed random score per (decision, choice)."""
    table = np.random.default_rng(seed).normal(size=(len(indices), 4))
    return float(sum(table[d, i] for d, i in enumerate(indices)))


def drive(strategy, steps, *, outstanding=3, reward=toy_reward, bad_every=0):
    """Keep ``outstanding`` proposals in flight; tell the oldest each step. Returns proposals."""
    proposals, pending = [], []
    for step in range(steps):
        while len(pending) < outstanding:
            proposal = strategy.ask()
            assert proposal is not None
            proposals.append(proposal)
            pending.append(proposal)
        told = pending.pop(0)
        bad = bad_every and step % bad_every == 0
        outcome = BAD_OUTCOMES[step % len(BAD_OUTCOMES)] if bad else Outcome(reward(told.indices))
        strategy.tell(told.proposal_id, outcome)
    return proposals, pending


def json_round_trip(state):
    return json.loads(json.dumps(state, allow_nan=False))


@pytest.mark.parametrize("name", NAMES)
def test_meets_the_protocol(name):
    assert isinstance(make_strategy(name, FULL, seed=0), Strategy)


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_proposals(name):
    runs = [drive(make_strategy(name, FULL, seed=3), 30)[0] for _ in range(2)]
    assert runs[0] == runs[1]
    other = drive(make_strategy(name, FULL, seed=4), 30)[0]
    assert [p.indices for p in other] != [p.indices for p in runs[0]]


@pytest.mark.parametrize("name", NAMES)
def test_restore_mid_run_with_outstanding_proposals_continues_identically(name):
    original = make_strategy(name, FULL, seed=11)
    _, pending = drive(original, 23, bad_every=5)
    state = json_round_trip(original.state_dict())
    restored = make_strategy(name, FULL, seed=999)  # the seed must not matter: the state carries the RNGs
    restored.load_state_dict(state)
    for strategy in (original, restored):
        for proposal in pending:  # results of the outstanding proposals arrive after the restore
            strategy.tell(proposal.proposal_id, Outcome(toy_reward(proposal.indices)))
    assert drive(original, 30, bad_every=4)[0] == drive(restored, 30, bad_every=4)[0]
    assert json.dumps(original.state_dict()) == json.dumps(restored.state_dict())


@pytest.mark.parametrize("name", NAMES)
def test_failed_nan_and_infeasible_outcomes_are_absorbed(name):
    strategy = make_strategy(name, FULL, seed=1)
    proposals, _ = drive(strategy, 40, bad_every=2)
    assert len({p.indices for p in proposals}) == len(proposals)
    json_round_trip(strategy.state_dict())


@pytest.mark.parametrize("name", NAMES)
def test_only_unusable_outcomes_are_absorbed(name):
    strategy = make_strategy(name, FULL, seed=2)
    drive(strategy, 25, bad_every=1)
    assert strategy.ask() is not None


@pytest.mark.parametrize("name", NAMES)
def test_proposals_are_canonical_and_decode(name):
    proposals, _ = drive(make_strategy(name, FULL, seed=5), 40)
    for proposal in proposals:
        assert FULL.canonicalize(proposal.indices) == proposal.indices
        FULL.decode(proposal.indices)  # a valid ArchSpec or ValueError
    assert len({p.proposal_id for p in proposals}) == len(proposals)


LEARNERS_SLOW = [pytest.param(n, marks=pytest.mark.slow) if n in ("rl", "reinforce") else n for n in NAMES]


@pytest.mark.parametrize("name", LEARNERS_SLOW)
def test_no_duplicates_until_the_space_is_exhausted(name):
    strategy = make_strategy(name, TINY, seed=0)
    size = TINY.size()
    proposals, pending = drive(strategy, size - 2, outstanding=3)
    assert len(proposals) == size
    assert len({p.indices for p in proposals}) == size
    with pytest.raises(SpaceExhausted, match=str(size)):
        strategy.ask()
    for proposal in pending:  # outstanding results can still be told after exhaustion
        strategy.tell(proposal.proposal_id, Outcome(toy_reward(proposal.indices)))


@pytest.mark.parametrize("name", NAMES)
def test_telling_an_unknown_or_repeated_id_raises(name):
    strategy = make_strategy(name, FULL, seed=0)
    proposal = strategy.ask()
    strategy.tell(proposal.proposal_id, Outcome(0.5))
    with pytest.raises(ValueError, match="not pending"):
        strategy.tell(proposal.proposal_id, Outcome(0.5))
    with pytest.raises(ValueError, match="not pending"):
        strategy.tell("nope", Outcome(0.5))


@pytest.mark.parametrize("name", NAMES)
def test_state_of_another_strategy_is_rejected(name):
    other = next(n for n in NAMES if n != name)
    with pytest.raises(ValueError, match="cannot be loaded"):
        make_strategy(name, FULL, seed=0).load_state_dict(make_strategy(other, FULL, seed=0).state_dict())


def best_after(name, seed, trials, space):
    strategy = make_strategy(name, space, seed=seed)
    best = -math.inf
    for _ in range(trials):
        proposal = strategy.ask()
        reward = toy_reward(proposal.indices)
        best = max(best, reward)
        strategy.tell(proposal.proposal_id, Outcome(reward))
    return best


@pytest.mark.parametrize("name", [n for n in NAMES if n != "random"])
def test_learning_strategies_beat_random_search_on_a_toy_objective(name):
    """21 decisions, additive reward: median best over 5 seeds after 80 trials."""
    seeds = range(5)
    random_best = np.median([best_after("random", s, 80, THREE) for s in seeds])
    learned_best = np.median([best_after(name, s, 80, THREE) for s in seeds])
    optimum = sum(np.random.default_rng(7).normal(size=(21, 4)).max(axis=1))
    assert learned_best > random_best, (learned_best, random_best, optimum)


@pytest.mark.parametrize("name", NAMES)
def test_a_pruned_outcome_is_learned_from_its_reward_like_a_finished_one(name):
    """ASHA's pruned trials carry the reward of the epochs they reached (nas.strategy.Outcome)."""
    states = []
    for status in ("finished", "pruned"):
        strategy = make_strategy(name, TINY, seed=3)
        for step in range(12):
            proposal = strategy.ask()
            strategy.tell(proposal.proposal_id, Outcome(toy_reward(proposal.indices), status if step % 2 else "finished"))
        states.append(json_round_trip(strategy.state_dict()))
    assert states[0] == states[1]
