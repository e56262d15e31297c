"""The MnasNet space with MobileNetV3-Small's last stage: same decisions, small head, exact
round trips, and a smaller latency floor than the Large head."""
import numpy as np

from search_spaces.counting import spec_cost
from search_spaces.registry import make_space


def test_small_head_space_round_trips_and_has_the_small_head():
    space = make_space("mnasnet-small", resolution=32, num_classes=10, in_channels=1)
    large = make_space("mnasnet", resolution=32, num_classes=10, in_channels=1)
    assert space.name == "mnasnet-small" and space.cardinalities == large.cardinalities
    rng = np.random.default_rng(0)
    for _ in range(50):
        indices = space.sample_indices(rng)
        spec = space.decode(indices)
        assert (spec.head.feature_channels, spec.head.hidden_channels) == (576, 1024)
        assert space.encode(spec) == indices
        assert spec_cost(spec).params < spec_cost(large.decode(indices)).params
