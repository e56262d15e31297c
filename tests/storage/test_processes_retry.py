"""Starting a local cluster again when an overloaded machine was too slow for Ray's startup timeout."""
import pytest

from storage.processes import start_with_retries


def test_a_slow_startup_is_retried_after_cleaning_up():
    calls, cleaned = [], []

    def start():
        calls.append(1)
        if len(calls) < 3:
            raise Exception("The current node timed out during startup. This could happen because ...")

    start_with_retries(start, lambda: cleaned.append(1), attempts=3)
    assert len(calls) == 3 and len(cleaned) == 2


def test_other_errors_and_the_last_attempt_are_raised():
    def broken():
        raise ValueError("bad address")

    with pytest.raises(ValueError, match="bad address"):
        start_with_retries(broken, lambda: None)

    def slow():
        raise Exception("timed out during startup")

    with pytest.raises(Exception, match="timed out during startup"):
        start_with_retries(slow, lambda: None, attempts=2)
