"""Report figures of whole models (``measure_specs_ms``): each spec paired with the reference,
the reference itself not paired with itself (it is 1x by definition)."""
from types import SimpleNamespace

import pytest

import latency.endtoend as endtoend
from latency.paired import PairedRatio
from search_spaces.encoding import format_spec
from search_spaces.reference import reference_spec

SMALL = reference_spec("mobilenetv3-small", resolution=32, num_classes=10, in_channels=1)
LARGE = reference_spec("mobilenetv3-large", resolution=32, num_classes=10, in_channels=1)


@pytest.fixture
def timed(monkeypatch):
    seen = []

    def fake_measure(measurer, specs, reference, **kwargs):
        seen.append(([format_spec(s) for s in specs], format_spec(reference), kwargs["min_seconds"]))
        return [PairedRatio(1.5 + i, 1.4 + i, 1.6 + i, 2.0 + i, 30) for i in range(len(specs))]

    monkeypatch.setattr(endtoend, "measure_specs", fake_measure)
    return seen


def test_the_reference_among_the_specs_is_1x_without_being_paired_with_itself(timed):
    figures = endtoend.measure_specs_ms([LARGE, SMALL], SimpleNamespace(), reference=SMALL, min_seconds=10.0)
    assert timed == [([format_spec(LARGE)], format_spec(SMALL), 10.0)]
    assert figures[0]["ratio"] == 1.5 and figures[0]["latency_ms"] == pytest.approx(3.0) and figures[0]["pairs"] == 30
    assert figures[1]["ratio"] == figures[1]["ratio_low"] == figures[1]["ratio_high"] == 1.0
    assert figures[1]["latency_ms"] == figures[1]["reference_ms"] == 2.0 and figures[1]["pairs"] == 0


def test_specs_all_equal_to_the_reference_are_still_measured(timed):
    figures = endtoend.measure_specs_ms([SMALL], SimpleNamespace())  # default reference: Small at its shape
    assert timed[0][0] == [format_spec(SMALL)] and figures[0]["ratio"] == 1.5 and figures[0]["pairs"] == 30


def test_without_the_reference_every_spec_is_paired_and_shares_one_speed(timed):
    figures = endtoend.measure_specs_ms([LARGE, LARGE], SimpleNamespace(), reference=SMALL)
    assert len(timed[0][0]) == 2 and [f["ratio"] for f in figures] == [1.5, 2.5]
    assert {f["reference_ms"] for f in figures} == {2.5} and figures[1]["latency_ms"] == pytest.approx(6.25)
