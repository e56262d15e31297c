"""Small helpers shared by tests (not fixtures)."""
import numpy as np

from search_spaces.mnasnet_space import MnasNetSpace


def sampled_specs(n: int, seed: int = 0, **space_kwargs):
    """``n`` specs sampled from the MnasNet space (default 1x32x32 input, 10 classes)."""
    space = MnasNetSpace(**({"resolution": 32, "num_classes": 10, "in_channels": 1} | space_kwargs))
    rng = np.random.default_rng(seed)
    return [space.sample(rng) for _ in range(n)]
