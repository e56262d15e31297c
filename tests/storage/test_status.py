"""One status vocabulary for runs and trials; the words of earlier versions still read."""
import pytest

from storage.status import RUN_STATUSES, SCORED, TRIAL_STATUSES, Status, parse_status, words_for


def test_earlier_words_read_as_todays():
    assert parse_status("ok", TRIAL_STATUSES) is Status.FINISHED
    assert parse_status("early_stopped", TRIAL_STATUSES) is Status.PRUNED
    assert parse_status("completed", RUN_STATUSES) is Status.FINISHED
    assert parse_status(Status.DIVERGED, RUN_STATUSES) is Status.DIVERGED
    assert set(words_for(SCORED)) == {"finished", "pruned", "ok", "early_stopped", "completed"}


@pytest.mark.parametrize("value, allowed", [("paused", RUN_STATUSES), ("pruned", RUN_STATUSES),
                                            ("running", TRIAL_STATUSES), (3, TRIAL_STATUSES)])
def test_words_outside_the_kind_are_refused_naming_the_allowed_ones(value, allowed):
    with pytest.raises(ValueError, match=r"trial status .* is not allowed; expected one of \["):
        parse_status(value, allowed, "trial status")


def test_statuses_are_plain_strings_in_files():
    assert f"{Status.PRUNED}" == "pruned" and Status.FINISHED == "finished"
