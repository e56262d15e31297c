"""Benchmark: does the long-lived measuring child read a model as a fresh one does, after it has measured many?

Every whole-model figure is taken in one measuring child per calling process
(``latency.isolated``), which lives through a whole pipeline run: a lazy table's calibration
(dozens of models), NetAdapt's round checks, the measure stage. This reads a few models against
MobileNetV3-Small as the round check does (two passes, pairs added to +/- 1.5%, spread over 10 s)
in a fresh child, then has that child measure ``--age-models`` sampled models as a calibration
does, reads the same models again in it (aged), and once more in a new child (fresh again).
``--repeats`` times, with the load injector on (``latency.noise``) unless ``--quiet-machine``.

Figures per model: median over repeats of aged / fresh-before and fresh-after / fresh-before
(the second is the noise floor of a fresh reading against another). Writes
``results/latency/child_age.json``::

    flock /tmp/mobilenas-bench.lock .venv/bin/python benchmarks/bench_child_age.py [--repeats 4]
"""
from __future__ import annotations

import argparse
import contextlib
import json
import time
from pathlib import Path

import numpy as np

from latency.endtoend import default_reference, measure_specs
from latency.isolated import CHILD
from latency.measurers import OrtMeasurer, OrtSettings
from latency.noise import LoadInjector
from latency.paired import WHOLE_MODEL_PRECISION, WHOLE_MODEL_SECONDS
from latency.validation import sample_specs
from search_spaces.encoding import format_spec
from search_spaces.registry import make_space
from search_spaces.resolve import resolve_spec
from search_spaces.spec import ArchSpec
from storage.statefiles import write_json

MEASURER = OrtMeasurer(OrtSettings(warmup=5, repeats=20))  # the lazy tables' measurer (ort-cpu-1t)
SHAPE = {"resolution": 32, "in_channels": 1, "num_classes": 10}  # the demo's task


def checked_models(seed: int) -> list[ArchSpec]:
    space = make_space("mnasnet-small", **SHAPE)
    return [resolve_spec("mobilenetv3-small", width=0.75, **SHAPE), resolve_spec("mobilenetv3-large", width=0.5, **SHAPE),
            *sample_specs(space, 2, seed)]


def read(models: list[ArchSpec], reference: ArchSpec) -> list[float]:
    """Each model's ratio to ``reference`` as a round check takes it."""
    return [r.ratio for r in measure_specs(MEASURER, models, reference, passes=2, precision=WHOLE_MODEL_PRECISION,
                                           min_seconds=WHOLE_MODEL_SECONDS)]


def age(count: int, seed: int, reference: ArchSpec) -> float:
    """The child measures ``count`` sampled models as a table's calibration does; seconds taken."""
    start = time.perf_counter()
    measure_specs(MEASURER, sample_specs(make_space("mnasnet", **SHAPE), count, seed), reference, pairs=24, passes=2)
    return time.perf_counter() - start


def one_repeat(models: list[ArchSpec], reference: ArchSpec, args: argparse.Namespace, index: int) -> dict:
    CHILD.close()
    before = read(models, reference)
    aging_s = age(args.age_models, args.seed + 100 + index, reference)
    aged = read(models, reference)
    CHILD.close()
    after = read(models, reference)
    return {"fresh_before": before, "aged": aged, "fresh_after": after, "aging_s": round(aging_s, 1)}


def figures(repeats: list[dict], models: list[ArchSpec]) -> list[dict]:
    out = []
    for i, spec in enumerate(models):
        column = {k: np.array([r[k][i] for r in repeats]) for k in ("fresh_before", "aged", "fresh_after")}
        out.append({"spec": format_spec(spec),
                    "aged_over_fresh_before": float(np.median(column["aged"] / column["fresh_before"])),
                    "aged_over_fresh_after": float(np.median(column["aged"] / column["fresh_after"])),
                    "fresh_after_over_fresh_before": float(np.median(column["fresh_after"] / column["fresh_before"])),
                    "aged_over_fresh_range": [float(np.min(column["aged"] / column["fresh_before"])),
                                              float(np.max(column["aged"] / column["fresh_before"]))]})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument("--age-models", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quiet-machine", action="store_true")
    parser.add_argument("--json", default="results/latency/child_age.json")
    args = parser.parse_args()
    models = checked_models(args.seed)
    reference = default_reference(models[0])
    repeats, start = [], time.perf_counter()
    with contextlib.nullcontext() if args.quiet_machine else LoadInjector(seed=0):
        for index in range(args.repeats):
            repeats.append(one_repeat(models, reference, args, index))
            print(f"repeat {index + 1} of {args.repeats}: {json.dumps(repeats[-1])}", flush=True)
    result = {"injector": not args.quiet_machine, "repeats": args.repeats, "age_models": args.age_models,
              "reference": format_spec(reference), "measurer": MEASURER.settings_dict(),
              "figures": figures(repeats, models), "values": repeats, "seconds": round(time.perf_counter() - start, 1)}
    write_json(Path(args.json), result)
    print(json.dumps(result["figures"], indent=1))


if __name__ == "__main__":
    main()
