"""Several models' end-to-end latency measured side by side, each paired run by run with the same
reference model (:mod:`latency.endtoend`), so that a slow moment of the machine hits a model and
its reference alike and the figures compare (the pipeline's NetAdapt check and its ``measure``
stage; ``mobilenas compare``)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from latency.endtoend import measure_specs_ms
from latency.measurers import Measurer
from latency.registry import measurer_from_recorded
from latency.table import read_manifest
from search_spaces.spec import ArchSpec


def table_measurer(folder: str | Path) -> Measurer:
    """The measurer a latency table was built with (its platform: runtime, threads, clock, device)."""
    return measurer_from_recorded(read_manifest(Path(folder))["measurer"])


def measure_side_by_side(specs: Sequence[ArchSpec], *, rounds: int = 2, reference: ArchSpec | None = None,
                         measurer: Measurer | None = None, min_seconds: float = 0.0) -> list[dict[str, float]]:
    """End-to-end latency of each spec through ``measurer`` (default ONNX Runtime CPU, batch 1, 1 thread), paired with
    ``reference`` (default MobileNetV3-Small at the first spec's shape) over ``rounds`` passes:
    ``latency_ms`` (ratio x the reference's median over the session), ``ratio`` with its interval
    (``ratio_low``, ``ratio_high``); ``latency_min_ms``/``latency_max_ms`` are the interval in ms.
    ``min_seconds``: the passes spread over at least that long (a check that decides)."""
    figures = measure_specs_ms(specs, measurer, reference=reference, passes=rounds, min_seconds=min_seconds)
    return [{**f, "latency_min_ms": f["ratio_low"] * f["reference_ms"], "latency_max_ms": f["ratio_high"] * f["reference_ms"],
             "rounds": rounds} for f in figures]
