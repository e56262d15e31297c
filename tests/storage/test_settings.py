"""Settings: declared ranges checked in one place, and read back from files refusing unknown keys
in one line naming what was read."""
import math
from dataclasses import dataclass

import pytest

from storage.settings import check_settings, setting, settings_from_dict


@dataclass(frozen=True)
class Toy:
    a: int = 1
    b: str = "x"


def test_known_keys_build_the_settings_and_unknown_ones_are_refused():
    assert settings_from_dict(Toy, {"a": 3}, "toy config") == Toy(a=3)
    with pytest.raises(ValueError, match=r"toy config has unknown keys \['c'\]; expected some of \['a', 'b'\]"):
        settings_from_dict(Toy, {"a": 3, "c": 0}, "toy config")


@dataclass(frozen=True)
class Ranged:
    count: int = setting(2, low=1)
    subset: int | None = setting(None, low=1, optional=True)
    rate: float = setting(0.1, kind=float, low=0, high=1, low_open=True)

    def __post_init__(self) -> None:
        check_settings(self, "{flag}")


@pytest.mark.parametrize("changes, message", [
    ({"count": 0}, "--count = 0 is not allowed; expected an integer >= 1"),
    ({"count": True}, "--count = True is not allowed"), ({"count": 2.0}, "--count = 2.0 is not allowed"),
    ({"subset": 0}, "--subset = 0 is not allowed; expected None or an integer >= 1"),
    ({"rate": 0.0}, "--rate = 0.0 is not allowed; expected a number > 0 and <= 1"),
    ({"rate": math.nan}, "--rate = nan is not allowed"), ({"rate": "0.5"}, "--rate = '0.5' is not allowed"),
])
def test_declared_ranges_refuse_bools_wrong_types_and_values_out_of_range(changes, message):
    with pytest.raises(ValueError, match=message):
        Ranged(**changes)


def test_values_in_range_are_kept():
    assert Ranged(count=1, subset=5, rate=1) == Ranged(1, 5, 1)
