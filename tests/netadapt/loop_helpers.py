"""Helpers of the NetAdapt loop and parallel tests: a tiny spec, digits at 8x8, a toy predictor."""
from __future__ import annotations

import pytest

from search_spaces.counting import spec_cost
from search_spaces.spec import ArchSpec, BlockSpec, HeadSpec, StemSpec
from training.datasets import Dataset, load_dataset


def loop_spec() -> ArchSpec:
    """Stem, three bottlenecks (one residual pair, one SE) and a MobileNetV3 head, 1x8x8 input."""
    blocks = (
        BlockSpec("bneck", 3, 1, 48, 16, act="relu"),  # 8x8 in
        BlockSpec("bneck", 3, 1, 48, 16, se=True, act="hswish", skip=True),
        BlockSpec("bneck", 3, 2, 64, 24, act="hswish"),  # 8x8 in, 4x4 out
    )
    return ArchSpec(blocks=blocks, stem=StemSpec(16, 3, 1, "hswish"), head=HeadSpec(32, 32, "hswish", 0.0),
                    resolution=8, in_channels=1, num_classes=10)


def toy_predict_ms(spec: ArchSpec) -> float:
    """A deterministic stand-in for a latency table: 0.05 ms plus 1 ms per 10 M MAdds."""
    return 0.05 + spec_cost(spec).madds / 1e7


@pytest.fixture(scope="session")
def digits8() -> Dataset:
    return load_dataset("digits", resolution=8, split_seed=0)
