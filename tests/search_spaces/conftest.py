import numpy as np
import pytest

from search_spaces.mnasnet_space import MnasNetSpace


@pytest.fixture
def space() -> MnasNetSpace:
    return MnasNetSpace(resolution=32, num_classes=10, in_channels=1)


def sampled_specs(n: int, seed: int = 0, **space_kwargs):
    space = MnasNetSpace(**({"resolution": 32, "num_classes": 10, "in_channels": 1} | space_kwargs))
    rng = np.random.default_rng(seed)
    return [space.sample(rng) for _ in range(n)]
