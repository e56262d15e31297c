"""Search strategies by name (what ``mobilenas search --strategy`` accepts).

Every entry is a class with a keyword-only constructor ``(space=, seed=, config=)`` and a
``config_class`` (a frozen dataclass of its settings, defaults next to the code). The contract
tests in ``tests/nas/test_strategy_contract.py`` run over this dict, so a strategy is tested
the moment it is registered.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from nas.evolution import RegularizedEvolution
from nas.random_search import RandomSearch
from nas.rl import ReinforceController, RLController
from nas.strategy import Strategy
from search_spaces.registry import SearchSpace

STRATEGIES: dict[str, type] = {
    "rl": RLController,  # PPO, as MnasNet
    "evolution": RegularizedEvolution,
    "random": RandomSearch,
    "reinforce": ReinforceController,
}
"""name -> class, in the order ``--help`` lists them; ``nas.search.SearchConfig`` accepts
exactly these names."""


def make_config(name: str, config: Any = None) -> Any:
    """The config dataclass of strategy ``name`` from None (defaults), an instance, or a mapping.

    Raises:
        ValueError: unknown strategy, unknown config keys, or a config of another strategy.
    """
    cls = _strategy_class(name).config_class
    if config is None:
        return cls()
    if isinstance(config, cls):
        return config
    if isinstance(config, Mapping):
        allowed = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(config) - allowed)
        if unknown:
            raise ValueError(f"unknown {name} settings {unknown}; expected some of {sorted(allowed)}")
        return cls(**config)
    raise ValueError(f"config for strategy {name!r} is a {type(config).__name__}; expected {cls.__name__}, a mapping or None")


def make_strategy(name: str, space: SearchSpace, *, seed: int, config: Any = None) -> Strategy:
    """A fresh strategy ``name`` over ``space``; ``config`` as accepted by :func:`make_config`."""
    return _strategy_class(name)(space=space, seed=seed, config=make_config(name, config))


def _strategy_class(name: str) -> type:
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; expected one of {sorted(STRATEGIES)}")
    return STRATEGIES[name]
