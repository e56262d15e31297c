"""The smallest network NetAdapt's proposals can reach (MobileNetV3 section 4.2).

Before a run starts, a target below the latency of this floor is refused: no sequence of
proposals can meet it. The floor shrinks every proposable width (the same targets, steps
and structure rules as :func:`netadapt.proposals.propose_reductions`) until none shrinks.
The walk takes about a second for a 20-block spec and a run asks for the same floor several
times (each round's reachability check and the job's own), so floors are remembered per process.
"""
from __future__ import annotations

from functools import lru_cache

from netadapt.proposals import ProposalConfig, propose_reductions
from search_spaces.spec import ArchSpec


def _width_sum(spec: ArchSpec) -> float:
    """A stand-in "latency" that falls with every width, so each proposal goes to its minimum."""
    widths = [spec.stem.out_channels, spec.head.feature_channels]
    widths += [b.out_channels + (b.exp_channels or 0) for b in spec.blocks]
    return float(sum(widths))


@lru_cache(maxsize=64)
def floor_spec(spec: ArchSpec, config: ProposalConfig = ProposalConfig()) -> ArchSpec:
    """``spec`` with every width NetAdapt may shrink at its smallest reachable value."""
    current = spec
    for _ in range(10_000):
        proposals = propose_reductions(current, _width_sum, 1e12, config)  # no cut this large: minimum widths
        if not proposals:
            return current
        current = proposals[0].spec
    raise RuntimeError("floor_spec did not converge")  # each step removes channels: unreachable
