"""The drift signature: probe ratios at a fixed resolution whatever the table's input size, the
table's own reference timed alongside at its own shape (the speed factor), and tables recorded
before the resolution was fixed probed at their own."""
import numpy as np
import pytest

from latency.drift import record_signature
from latency.endtoend import prepared_model
from latency.signature import SIGNATURE_RESOLUTION, measure_signature
from search_spaces.reference import reference_spec
from tests.latency.fakes import FakeMeasurer


class ShapeMeasurer(FakeMeasurer):
    """The fake, its time growing with the input's side; remembers the shapes it ran."""

    def __init__(self) -> None:
        super().__init__()
        self.sides: set[int] = set()

    def measure(self, model, input_shape):
        self.sides.add(int(input_shape[-1]))
        return super().measure(model, input_shape) * input_shape[-1]


@pytest.fixture(scope="module")
def reference():
    return reference_spec("mobilenetv3-small", resolution=32, num_classes=10, in_channels=1)


def test_a_recorded_signature_probes_at_the_fixed_resolution_and_times_the_reference_at_its_own(reference):
    measurer = ShapeMeasurer()
    record = record_signature(measurer, reference)
    assert record["resolution"] == SIGNATURE_RESOLUTION and measurer.sides == {SIGNATURE_RESOLUTION, 32}
    alone = float(np.median(ShapeMeasurer().measure(prepared_model(measurer, reference), (1, 1, 32, 32))))
    assert record["reference_ms"] == pytest.approx(alone, rel=0.01)
    assert set(record["ratios"]) == {"mobilenetv3-large", "mobilenetv2"}


def test_a_signature_without_a_resolution_is_probed_at_the_references_own(reference):
    measurer = ShapeMeasurer()
    ratios, reference_ms = measure_signature(measurer, reference, resolution=None)
    assert measurer.sides == {32} and all(r > 0 for r in ratios.values()) and reference_ms > 0
