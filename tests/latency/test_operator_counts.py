"""Operator counts of a spec's network: equal to its torch modules', golden for MobileNetV3."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from latency.operator_counts import operator_counts
from search_spaces.builder import build_model
from search_spaces.mnasnet_space import MnasNetSpace
from search_spaces.reference import reference_spec


RUNS_AS = {"TrimmedConv2d": "Conv2d"}
"""The builder's conv subclass exports (and is timed) as a plain convolution."""


def _module_counts(spec) -> dict[str, float]:
    model = build_model(spec)
    names = (type(m).__name__ for m in model.modules() if not any(m.children()))
    return {f"op_{name}": float(n) for name, n in Counter(RUNS_AS.get(name, name) for name in names).items()}


@pytest.mark.parametrize("name, convs, norms, se", [("mobilenetv3-small", 52, 34, 9), ("mobilenetv3-large", 62, 46, 8)])
def test_mobilenetv3_counts_match_the_papers_blocks(name, convs, norms, se):
    """Small: 11 bottlenecks, the first without an expansion conv, 9 with SE (Table 2); Large:
    15, the first without one, 8 with SE (Table 1); stem and head conv beside them, 2 convs per SE."""
    counts = operator_counts(reference_spec(name))
    assert (counts["op_Conv2d"], counts["op_BatchNorm2d"], counts["op_Hardsigmoid"]) == (convs, norms, se)
    assert counts == _module_counts(reference_spec(name))


def test_counts_equal_the_built_networks_modules_on_sampled_specs():
    space = MnasNetSpace(resolution=32, in_channels=1, num_classes=10)
    rng = np.random.default_rng(0)
    for _ in range(8):
        spec = space.sample(rng)
        assert operator_counts(spec) == _module_counts(spec)
