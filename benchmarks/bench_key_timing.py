"""Benchmark: table entries timed interleaved with the reference against bracketed between two blocks.

Two sweeps of layer keys at 32x32 (1 channel, 10 classes, as the demo's tables): the head
(1x1 feature conv from 400 channels) over 19 feature widths 432..576, and an SE MBConv block at
a 2x2 map over 13 expansion widths 192..576. A wider layer is never cheaper, so a sweep's
entries should rise with the width; each key is timed by both methods in every pass, alike:

- ``bracketed_wall_clock``: the key's warm samples (``repeats`` runs, their median) on the wall
  clock between two reference blocks on the thread clock, divided by their mean: the method of
  tables built before (their round-robin runner read the wall clock whatever the settings);
- ``bracketed``: the same with the key on the thread clock too;
- ``interleaved``: pairs of a reference block and a key block, median of the per-pair ratios
  (the method of tables built now).

Figures per method, in reference units: test-retest (median |pass b / pass a - 1| over keys and
pairs of passes, and the share within 5%), and the sweeps' *inversions*: neighbouring widths
where the wider key reads more than 5% cheaper, counted over every pass. With the load injector
on (``latency.noise``) unless ``--quiet-machine``. Writes ``results/latency/key_timing.json``::

    .venv/bin/python benchmarks/bench_key_timing.py [--passes 3] [--quiet-machine]
"""
from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import time
from pathlib import Path

import numpy as np

from latency.endtoend import cached_model, default_reference, spec_input_shape
from latency.key_timing import FIXED_REFERENCE_BLOCK, BuildConfig, measure_key
from latency.keys import LayerKey
from latency.measurers import OrtMeasurer, OrtSettings
from latency.noise import LoadInjector
from latency.paired import block_runner
from search_spaces.encoding import format_spec
from search_spaces.mnasnet_space import MnasNetSpace
from storage.statefiles import write_json

METHODS = ("bracketed_wall_clock", "bracketed", "interleaved")
WALL = OrtMeasurer(OrtSettings(warmup=5, repeats=20, clock="wall"))
INVERSION = 0.05


def sweeps() -> dict[str, list[LayerKey]]:
    head = [LayerKey("head", "head", 1, 400, 0, width, 1, 1, False, "hswish", False, 1024, 10)
            for width in range(432, 577, 8)]
    block = [LayerKey("block", "bneck", 2, 96, width, 96, 5, 1, True, "hswish", True)
             for width in range(192, 577, 32)]
    return {"head_feature_width": head, "mbconv_expansion": block}


def bracketed_ratio(measurer: OrtMeasurer, key: LayerKey, config: BuildConfig, reference) -> float:
    before = float(np.min(reference(config.reference_block)))
    row = measure_key(measurer, key, config)
    after = float(np.min(reference(config.reference_block)))
    return row["raw_median_ms"] / ((before + after) / 2)


def interleaved_ratio(measurer: OrtMeasurer, key: LayerKey, config: BuildConfig, reference) -> float:
    row = measure_key(measurer, key, config, reference)
    return row["raw_median_ms"] / row["ref_ms"]


def one_pass(measurer: OrtMeasurer, keys: dict[str, list[LayerKey]], reference) -> dict[str, dict[str, list[float]]]:
    """Every key by both methods (the order of the methods alternating from key to key)."""
    config, out = BuildConfig(reference_block=FIXED_REFERENCE_BLOCK), {m: {name: [] for name in keys} for m in METHODS}
    timers = {"bracketed_wall_clock": lambda m, *rest: bracketed_ratio(WALL, *rest), "bracketed": bracketed_ratio,
              "interleaved": interleaved_ratio}
    for name, sweep in keys.items():
        for index, key in enumerate(sweep):
            for method in (METHODS if index % 2 == 0 else METHODS[::-1]):
                out[method][name].append(timers[method](measurer, key, config, reference))
    return out


def figures(passes: list[dict[str, dict[str, list[float]]]], method: str) -> dict[str, float]:
    diffs, inversions, neighbours = [], 0, 0
    for a, b in itertools.combinations(passes, 2):
        for name in a[method]:
            diffs += [abs(y / x - 1) for x, y in zip(a[method][name], b[method][name])]
    for one in passes:
        for values in one[method].values():
            steps = np.asarray(values[1:]) / np.asarray(values[:-1]) - 1
            inversions += int(np.sum(steps < -INVERSION))
            neighbours += steps.size
    diffs = np.asarray(diffs)
    return {"retest_median_abs_diff": float(np.median(diffs)), "retest_share_within_5pct": float(np.mean(diffs <= 0.05)),
            "retest_max_abs_diff": float(diffs.max()), "inversions": inversions, "neighbour_pairs": neighbours}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--gap-s", type=float, default=20.0, help="pause between passes")
    parser.add_argument("--quiet-machine", action="store_true")
    parser.add_argument("--json", default="results/latency/key_timing.json")
    args = parser.parse_args()
    measurer = OrtMeasurer(OrtSettings(warmup=5, repeats=20))
    ref_spec = default_reference(MnasNetSpace(resolution=32, in_channels=1, num_classes=10).sample(np.random.default_rng(0)))
    keys, passes, start = sweeps(), [], time.perf_counter()
    with contextlib.nullcontext() if args.quiet_machine else LoadInjector(seed=0):
        reference = block_runner(measurer, cached_model(measurer, ref_spec), spec_input_shape(ref_spec))
        for index in range(args.passes):
            if index:
                time.sleep(args.gap_s)
            passes.append(one_pass(measurer, keys, reference))
            print(f"pass {index + 1} of {args.passes} done ({time.perf_counter() - start:.0f} s)", flush=True)
    result = {"injector": not args.quiet_machine, "passes": args.passes, "keys": {n: len(k) for n, k in keys.items()},
              "inversion_threshold": INVERSION, "reference": format_spec(ref_spec),
              "figures": {m: figures(passes, m) for m in METHODS}, "values": passes,
              "seconds": round(time.perf_counter() - start, 1)}
    write_json(Path(args.json), result)
    print(json.dumps(result["figures"], indent=2))


if __name__ == "__main__":
    main()
