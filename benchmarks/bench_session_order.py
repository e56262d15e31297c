"""Benchmark: does the order of making ONNX Runtime sessions bias a paired ratio?

A model paired with a second session of itself should read 1.0. For each model below, timed
against itself ``--repeats`` times (24 pairs of 10-run blocks, 1 ORT thread, thread clock):

- ``reference_first``: the reference's session made first, then the model's, every pair from
  those two sessions (what ``latency.paired.measure_paired`` did before it balanced the orders);
- ``reference_last``: the model's session made first;
- ``balanced``: ``measure_paired`` as it is now (a pass in each order, fresh sessions, the two
  orders' ratios balanced around their geometric mean).

Figures: the median and range of the repeats' ratios. With the load injector on unless
``--quiet-machine``. Writes ``results/latency/session_order.json``::

    .venv/bin/python benchmarks/bench_session_order.py [--quiet-machine] [--repeats 6]
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import time
from pathlib import Path

import numpy as np

from latency.endtoend import prepared_model, spec_input_shape
from latency.measurers import OrtMeasurer, OrtSettings
from latency.noise import LoadInjector
from latency.paired import BLOCK_RUNS, DEFAULT_PAIRS, fresh_sessions, measure_paired, paired_ratios
from search_spaces.reference import reference_spec
from storage.statefiles import write_json

MODELS = (("mobilenetv3-small", 32, 1, 10), ("mobilenetv3-large", 32, 1, 10), ("mobilenetv3-small", 224, 3, 1000))
MEASURER = OrtMeasurer(OrtSettings(warmup=5, repeats=20))


def one_order(model: bytes, shape: tuple[int, ...], reference_first: bool) -> float:
    """The self-pairing's ratio from one pair of sessions made in the given order."""
    ref_runner, (runner,) = fresh_sessions(MEASURER, [model], [shape], model, shape, reference_first=reference_first)
    ratios, _ = paired_ratios(runner, ref_runner, pairs=DEFAULT_PAIRS, block=BLOCK_RUNS)
    return float(np.median(ratios))


def self_pairing(name: str, resolution: int, channels: int, classes: int, repeats: int) -> dict[str, object]:
    spec = reference_spec(name, resolution=resolution, num_classes=classes, in_channels=channels)
    model, shape = prepared_model(MEASURER, spec), spec_input_shape(spec)
    columns: dict[str, list[float]] = {"reference_first": [], "reference_last": [], "balanced": []}
    for _ in range(repeats):  # the three alternate, so a slow minute falls on each alike
        columns["reference_first"].append(one_order(model, shape, True))
        columns["reference_last"].append(one_order(model, shape, False))
        columns["balanced"].append(measure_paired(MEASURER, [model], [shape], model, shape)[0].ratio)
    return {"model": f"{name} {channels}x{resolution}x{resolution}, {classes} classes",
            **{k: {"median": float(np.median(v)), "min": float(np.min(v)), "max": float(np.max(v)),
                   "values": [round(x, 4) for x in v]} for k, v in columns.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quiet-machine", action="store_true", help="no load injector")
    parser.add_argument("--repeats", type=int, default=6)
    parser.add_argument("--out", default="results/latency/session_order.json")
    args = parser.parse_args()
    noise = contextlib.nullcontext() if args.quiet_machine else LoadInjector(seed=0)
    start = time.perf_counter()
    with noise:
        rows = [self_pairing(*model, args.repeats) for model in MODELS]
    result = {"what": "a model paired with a second session of itself (ratio should be 1.0)",
              "command": "benchmarks/bench_session_order.py" + (" --quiet-machine" if args.quiet_machine else ""),
              "injector": not args.quiet_machine, "repeats": args.repeats, "pairs": DEFAULT_PAIRS,
              "block_runs": BLOCK_RUNS, "models": rows, "seconds": round(time.perf_counter() - start, 1),
              "load_average_at_end": list(os.getloadavg())}
    write_json(Path(args.out), result)
    for row in rows:
        print(row["model"] + ": " + ", ".join(f"{k} {row[k]['median']:.3f} [{row[k]['min']:.3f}, {row[k]['max']:.3f}]"
                                              for k in ("reference_first", "reference_last", "balanced")))
    print(json.dumps({k: v for k, v in result.items() if k != "models"}, indent=2))


if __name__ == "__main__":
    main()
