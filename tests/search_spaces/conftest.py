import pytest

from search_spaces.mnasnet_space import MnasNetSpace


@pytest.fixture
def space() -> MnasNetSpace:
    return MnasNetSpace(resolution=32, num_classes=10, in_channels=1)
