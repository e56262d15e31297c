"""Behaviour specific to each strategy and the registry (the shared contract is in test_strategy_contract)."""
import json
import math

import numpy as np
import pytest
import torch

from nas.evolution import EvolutionConfig, RegularizedEvolution
from nas.ledger import ProposalLedger
from nas.random_search import RandomSearch
from nas.registry import STRATEGIES, make_config, make_strategy
from nas.rl import ReinforceController, RLConfig, RLController
from nas.strategy import Outcome
from search_spaces.mnasnet_space import MnasNetSpace

FULL = MnasNetSpace(resolution=32, num_classes=10)
TINY = MnasNetSpace(resolution=32, num_classes=10, stages=((16, 1, 1),))


def test_registry_names_and_unknown_name():
    assert set(STRATEGIES) == {"random", "evolution", "rl", "reinforce"}
    with pytest.raises(ValueError, match=r"unknown strategy 'bayes'.*evolution.*random.*reinforce.*rl"):
        make_strategy("bayes", FULL, seed=0)


def test_rl_is_ppo_and_reinforce_is_reinforce():
    assert make_strategy("rl", FULL, seed=0).config.method == "ppo"
    assert make_strategy("reinforce", FULL, seed=0).config.method == "reinforce"
    with pytest.raises(ValueError, match="reinforce"):
        make_strategy("reinforce", FULL, seed=0, config={"method": "ppo"})


def test_config_from_mapping_and_unknown_keys():
    strategy = make_strategy("evolution", FULL, seed=0, config={"population_size": 8, "sample_size": 2})
    assert strategy.config == EvolutionConfig(population_size=8, sample_size=2)
    with pytest.raises(ValueError, match="unknown evolution settings.*'tournament'"):
        make_config("evolution", {"tournament": 3})
    with pytest.raises(ValueError, match="expected EvolutionConfig"):
        make_config("evolution", RLConfig())


@pytest.mark.parametrize("config, message", [
    (lambda: EvolutionConfig(population_size=1), "population_size"),
    (lambda: EvolutionConfig(population_size=5, sample_size=6), "sample_size"),
    (lambda: RLConfig(method="a2c"), "method"),
    (lambda: RLConfig(learning_rate=0.0), "learning_rate"),
    (lambda: RLConfig(clip=1.5), "clip"),
    (lambda: RLConfig(batch_size=0), "batch_size"),
    (lambda: RLConfig(baseline_decay=1.0), "baseline_decay"),
    (lambda: RLConfig(entropy_weight=math.nan), "entropy_weight"),
])
def test_configs_reject_bad_values(config, message):
    with pytest.raises(ValueError, match=message):
        config()


@pytest.mark.parametrize("seed", [-1, 1.5, True])
def test_bad_seed_is_rejected(seed):
    with pytest.raises(ValueError, match="seed"):
        RandomSearch(space=FULL, seed=seed)


def test_evolution_is_random_until_the_population_is_filled_then_mutates_the_tournament_winner():
    config = EvolutionConfig(population_size=4, sample_size=4)
    strategy = RegularizedEvolution(space=FULL, seed=0, config=config)
    first = [strategy.ask() for _ in range(4)]
    for rank, proposal in enumerate(first):
        strategy.tell(proposal.proposal_id, Outcome(float(rank)))
    best = first[-1].indices
    children = []
    for _ in range(20):
        child = strategy.ask()
        children.append(child.indices)
        strategy.tell(child.proposal_id, Outcome(-1.0))  # children never win, so the parent stays `best`
        if len(strategy.population) == 4 and best not in [p for p, _ in strategy.population]:
            break
    assert sum(a != b for a, b in zip(children[0], best)) >= 1
    assert FULL.canonicalize(FULL.mutate_indices(best, np.random.default_rng(0))) != best
    assert any(sum(a != b for a, b in zip(c, best)) <= 3 for c in children[:3])


def test_evolution_the_oldest_dies_not_the_worst():
    strategy = RegularizedEvolution(space=FULL, seed=0, config=EvolutionConfig(population_size=3, sample_size=1))
    proposals = [strategy.ask() for _ in range(4)]
    for proposal, reward in zip(proposals, [9.0, 0.0, 0.0, 0.0]):
        strategy.tell(proposal.proposal_id, Outcome(reward))
    assert [p for p, _ in strategy.population] == [p.indices for p in proposals[1:]]


def test_evolution_keeps_asking_while_results_are_outstanding():
    strategy = RegularizedEvolution(space=FULL, seed=0, config=EvolutionConfig(population_size=5, sample_size=2))
    proposals = [strategy.ask() for _ in range(12)]  # nothing told yet: all random, none None
    assert all(p is not None for p in proposals)
    assert len({p.indices for p in proposals}) == 12


def test_evolution_records_unusable_outcomes_without_a_reward():
    strategy = RegularizedEvolution(space=FULL, seed=0, config=EvolutionConfig(population_size=4, sample_size=2))
    proposal = strategy.ask()
    strategy.tell(proposal.proposal_id, Outcome(math.nan))
    assert strategy.population[-1] == (proposal.indices, None)


def test_ppo_update_raises_the_probability_of_the_rewarded_sequence():
    strategy = RLController(space=TINY, seed=0, config=RLConfig(batch_size=4, learning_rate=0.05))
    proposals = [strategy.ask() for _ in range(4)]
    tokens = torch.tensor([strategy.ledger.pending[p.proposal_id][1]["tokens"] for p in proposals])
    before = strategy.controller.evaluate(tokens)[0].detach()
    for rank, proposal in enumerate(proposals):
        strategy.tell(proposal.proposal_id, Outcome(1.0 if rank == 0 else 0.0))
    after = strategy.controller.evaluate(tokens)[0].detach()
    assert strategy.updates == 1
    assert after[0] > before[0]
    assert (after[1:] - before[1:]).mean() < after[0] - before[0]


def test_rl_learns_failures_as_the_worst_reward_seen_and_drops_them_before_any():
    strategy = ReinforceController(space=TINY, seed=0, config=RLConfig(method="reinforce", batch_size=100))
    first = strategy.ask()
    strategy.tell(first.proposal_id, Outcome(0.0, "failed"))
    assert strategy.batch == []
    for reward in (0.3, 0.7):
        proposal = strategy.ask()
        strategy.tell(proposal.proposal_id, Outcome(reward))
    failed = strategy.ask()
    strategy.tell(failed.proposal_id, Outcome(math.nan, "diverged"))
    assert [r for _, _, r in strategy.batch] == [0.3, 0.7, 0.3]


def test_rl_sample_log_prob_matches_evaluation():
    strategy = RLController(space=FULL, seed=3)
    tokens, log_prob = strategy.controller.sample(strategy.torch_rng)
    evaluated = float(strategy.controller.evaluate(torch.tensor([tokens]))[0][0].detach())
    assert log_prob == pytest.approx(evaluated, abs=1e-4)
    assert len(tokens) == len(FULL.cardinalities)
    assert all(0 <= t < n for t, n in zip(tokens, FULL.cardinalities))


def test_rl_state_grows_by_what_each_trial_adds_not_by_the_weights():
    """The state is written after every trial, so it must not grow with more than each trial's
    proposal and reward (the weights and Adam moments are a fixed part)."""
    strategy = RLController(space=FULL, seed=0)

    def state_size_after(trials: int) -> int:
        for _ in range(trials):
            proposal = strategy.ask()
            strategy.tell(proposal.proposal_id, Outcome(0.5 + 0.01 * len(strategy.rewards)))
        return len(json.dumps(strategy.state_dict()))

    before, after = state_size_after(10), state_size_after(20)
    assert 0 < (after - before) / 20 < 2_000


def test_ledger_enumerates_a_nearly_exhausted_space():
    ledger = ProposalLedger(TINY, "t")
    rng = np.random.default_rng(0)
    all_points = {TINY.canonicalize(c) for c in np.ndindex(*TINY.cardinalities)}
    keep = sorted(all_points)[5]
    for point in all_points - {keep}:
        ledger.issue(point)
    assert ledger.random_unseen(rng) == keep


def test_rl_state_encodes_tensors_exactly_and_compactly():
    """Weights, Adam moments and the generator are written as base64 bytes: the state resumes
    bit for bit, and is a fraction of the nested lists of floats earlier versions wrote."""
    from nas.controller import module_state

    strategy = RLController(space=FULL, seed=0)
    for _ in range(6):
        proposal = strategy.ask()
        strategy.tell(proposal.proposal_id, Outcome(0.5 + 0.01 * len(strategy.rewards)))
    state = json.loads(json.dumps(strategy.state_dict()))
    as_lists = {name: t.tolist() for name, t in strategy.controller.state_dict().items()}
    assert len(json.dumps(state["controller"])) < 0.5 * len(json.dumps(as_lists))
    twin = RLController(space=FULL, seed=5)
    twin.load_state_dict(state)
    for name, tensor in strategy.controller.state_dict().items():
        assert torch.equal(twin.controller.state_dict()[name], tensor)
    assert [twin.ask().indices for _ in range(3)] == [strategy.ask().indices for _ in range(3)]
    assert module_state(twin.controller) == module_state(strategy.controller)


def test_rl_state_of_earlier_versions_with_nested_lists_still_loads():
    strategy = RLController(space=FULL, seed=2)
    proposal = strategy.ask()
    strategy.tell(proposal.proposal_id, Outcome(0.4))
    state = strategy.state_dict()
    old = {**state, "torch_rng": strategy.torch_rng.get_state().tolist(),
           "controller": {n: t.tolist() for n, t in strategy.controller.state_dict().items()},
           "optimizer": [{k: (v.tolist() if torch.is_tensor(v) else v) for k, v in entry.items()}
                         for entry in strategy.optimizer.state_dict()["state"].values()]}
    twin = RLController(space=FULL, seed=9)
    twin.load_state_dict(json.loads(json.dumps(old)))
    assert [twin.ask().indices for _ in range(3)] == [strategy.ask().indices for _ in range(3)]


def test_a_malformed_encoded_tensor_is_refused_naming_the_fields():
    from nas.controller import decode_tensor, encode_tensor

    good = encode_tensor(torch.arange(6, dtype=torch.float32).reshape(2, 3))
    assert torch.equal(decode_tensor(good, torch.float32), torch.arange(6, dtype=torch.float32).reshape(2, 3))
    for bad in ({**good, "shape": [4, 4]}, {**good, "base64": "not base64!"}, {"dtype": "float32"}):
        with pytest.raises(ValueError, match="dtype, shape and base64"):
            decode_tensor(bad, torch.float32)
