"""A speed-free signature of a machine: paired ratios between fixed probe models.

A machine running at another speed (a slow moment, a throttled clock, a neighbour on the VM)
runs every model slower alike; paired ratios between models barely move (MobileNetV3-Large over
-Small repeated within 3% in most probes on a VM whose absolute speed swung 1.7x). Other
hardware or another runtime changes them: the probes differ in what bounds them (MobileNetV3-
Large's wide squeeze-excite and hard-swish stages, MobileNetV2's wide ReLU6 expansions without
SE), so cache sizes, vector units and kernels weigh differently on each. A table records its
signature at build; opening it compares (MobileNetV3 section 4: a table is only valid for the
hardware it was measured on).

The probes run at :data:`SIGNATURE_RESOLUTION` whatever the table's input size: runs of a few
tenths of a millisecond (32x32) are dominated by what a neighbouring process left in the caches,
and their ratios swing by tens of percent on a loaded machine, while at 224x224 they repeat
within a few percent (``results/latency/README.md``). The table's own reference is timed in the
same session, at its own shape, for the speed factor. Tables recorded before the resolution was
fixed are probed at their reference's resolution, as they were recorded.
"""
from __future__ import annotations

import math
from typing import Mapping

from latency.endtoend import cached_model, measure_specs
from latency.measurers import Measurer
from latency.paired import PairedRatio
from search_spaces.reference import reference_spec
from search_spaces.spec import ArchSpec

PROBES = ("mobilenetv3-large", "mobilenetv2")
SIGNATURE_PAIRS = 24
SIGNATURE_RESOLUTION = 224
SIGNATURE_BLOCK = 3
"""Runs per block of the probes at :data:`SIGNATURE_RESOLUTION` (runs of 5-20 ms): the signature
tells other hardware (a probe ratio 30% off) from this machine, and with blocks of 3 the drift
benchmark's 20 openings of a table built here refused none and 20 openings of one signed as other
hardware refused all 20, under the load injector; the 10-run blocks of
:data:`latency.paired.BLOCK_RUNS` would make every opening about three times longer."""


def probe_specs(like: ArchSpec) -> dict[str, ArchSpec]:
    """The :data:`PROBES` at ``like``'s input shape and class count."""
    return {name: reference_spec(name, resolution=like.resolution, num_classes=like.num_classes,
                                 in_channels=like.in_channels) for name in PROBES}


def measure_signature(measurer: Measurer, reference: ArchSpec, *, resolution: int | None = None,
                      pairs: int = SIGNATURE_PAIRS) -> tuple[dict[str, float], float]:
    """Each probe's paired ratio to ``reference`` at ``resolution`` (None: the reference's own),
    and ``reference``'s own time (ms, at its own shape) meanwhile."""
    anchor = reference if resolution in (None, reference.resolution) else reference.replace(resolution=resolution)
    probes = probe_specs(anchor)
    models = [cached_model(measurer, spec) for spec in probes.values()]
    block = SIGNATURE_BLOCK if anchor.resolution == SIGNATURE_RESOLUTION else None
    results: list[PairedRatio] = measure_specs(measurer, list(probes.values()), anchor, pairs=pairs, models=models,
                                               block=block)
    timed = results
    if anchor is not reference:  # the reference's own statistic, as its baseline was taken at build
        timed = measure_specs(measurer, [reference], reference, pairs=pairs, models=[cached_model(measurer, reference)])
    reference_ms = float(sorted(r.reference_ms for r in timed)[len(timed) // 2])
    return {name: r.ratio for name, r in zip(probes, results)}, reference_ms


def signature_error(recorded: Mapping[str, float], measured: Mapping[str, float]) -> float:
    """The largest relative difference between a recorded and a measured probe ratio
    (0.05 = 5%), over the probes both hold; 0 when they share none."""
    shared = [name for name in recorded if name in measured]
    if not shared:
        return 0.0
    return max(math.exp(abs(math.log(measured[n] / recorded[n]))) - 1 for n in shared)
