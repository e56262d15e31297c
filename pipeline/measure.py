"""Several models' end-to-end latency measured side by side, each paired run by run with the same
reference model (:mod:`latency.endtoend`), so that a slow moment of the machine hits a model and
its reference alike and the figures compare (the pipeline's NetAdapt check and its ``measure``
stage; ``mobilenas compare``)."""
from __future__ import annotations

from typing import Sequence

from latency.endtoend import measure_specs_ms
from search_spaces.spec import ArchSpec


def measure_side_by_side(specs: Sequence[ArchSpec], *, rounds: int = 2, reference: ArchSpec | None = None
                         ) -> list[dict[str, float]]:
    """End-to-end ONNX Runtime CPU latency of each spec (batch 1, 1 thread), paired with
    ``reference`` (default MobileNetV3-Small at the first spec's shape) over ``rounds`` passes:
    ``latency_ms`` (ratio x the reference's median over the session), ``ratio`` with its interval
    (``ratio_low``, ``ratio_high``); ``latency_min_ms``/``latency_max_ms`` are the interval in ms."""
    figures = measure_specs_ms(specs, reference=reference, passes=rounds)
    return [{**f, "latency_min_ms": f["ratio_low"] * f["reference_ms"], "latency_max_ms": f["ratio_high"] * f["reference_ms"],
             "rounds": rounds} for f in figures]
