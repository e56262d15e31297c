"""Settings read back from files: unknown keys are refused in one line naming what was read."""
from dataclasses import dataclass

import pytest

from storage.settings import settings_from_dict


@dataclass(frozen=True)
class Toy:
    a: int = 1
    b: str = "x"


def test_known_keys_build_the_settings_and_unknown_ones_are_refused():
    assert settings_from_dict(Toy, {"a": 3}, "toy config") == Toy(a=3)
    with pytest.raises(ValueError, match=r"toy config has unknown keys \['c'\]; expected some of \['a', 'b'\]"):
        settings_from_dict(Toy, {"a": 3, "c": 0}, "toy config")
