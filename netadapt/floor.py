"""The smallest network NetAdapt's proposals can reach (MobileNetV3 section 4.2).

Before a run starts, a target below the latency of this floor is refused: no sequence of
proposals can meet it, and a pipeline choosing NetAdapt's start among several models
(:mod:`pipeline.netadapt_start`) asks for the floor of each. The floor shrinks every proposable
width (the same targets, steps and structure rules as :func:`netadapt.proposals.propose_reductions`)
until none shrinks: each step takes the first width that can still shrink to its deepest
allowed cut, which is the first proposal :func:`~netadapt.proposals.propose_reductions` makes
when no cut meets the delta asked. The walk builds only that one cut per step, not every width
of every layer (12 floors of 20-block specs took 36 s that way, a pipeline's start choice
waiting on them); floors are also remembered per process.
"""
from __future__ import annotations

from functools import lru_cache

from netadapt.proposals import ProposalConfig, deepest_cut, shrink_targets
from search_spaces.spec import ArchSpec


@lru_cache(maxsize=64)
def floor_spec(spec: ArchSpec, config: ProposalConfig = ProposalConfig()) -> ArchSpec:
    """``spec`` with every width NetAdapt may shrink at its smallest reachable value."""
    current = spec
    for _ in range(10_000):
        cut = next((c for t in shrink_targets(current, config) if (c := deepest_cut(current, t, config)) is not None),
                   None)
        if cut is None:
            return current
        current = cut
    raise RuntimeError("floor_spec did not converge")  # each step removes channels: unreachable
