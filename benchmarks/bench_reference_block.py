"""Benchmark: how many reference runs a table entry's paired blocks need (``BuildConfig.reference_block``).

A table entry is the median over ``key_pairs`` pairs of (fastest run of a reference block,
fastest run of a key block). The reference is a whole model (3.9 ms a run at 224x224, 0.64 ms
at 32x32), so at 224x224 its blocks, not the layer, take most of a build's time. This times the
same sampled layer keys of the ``mnasnet`` space with reference blocks of each size in
``--blocks``, in every pass, the order of the sizes rotating from key to key, with the load
injector on (``latency.noise``) unless ``--quiet-machine``.

Figures per block size: seconds per key (median over keys, all passes), test-retest of the
entry in reference units (median |pass b / pass a - 1| and the share within 5%, over keys), and
its offset from the first size's entry (median ratio over keys and passes): a min of fewer runs
is higher, so entries in reference units read lower. A table measured alike throughout absorbs
an offset (its calibration maps entries to whole models in the same units); mixing sizes in one
table would not, which is why a resumed or lazily extended table keeps its recorded size.
Writes ``results/latency/reference_block.json``::

    .venv/bin/python benchmarks/bench_reference_block.py [--resolutions 32 224] [--keys 60] [--blocks 5 2 1]
"""
from __future__ import annotations

import argparse
import contextlib
import json
import random
import time
from pathlib import Path

import numpy as np

from latency.endtoend import cached_model, spec_input_shape
from latency.key_timing import BuildConfig, measure_key
from latency.keys import LayerKey, space_keys
from latency.measurers import OrtMeasurer, OrtSettings
from latency.noise import LoadInjector
from latency.paired import block_runner
from search_spaces.encoding import parse_spec
from search_spaces.registry import make_space
from storage.statefiles import write_json

MEASURER = OrtMeasurer(OrtSettings(warmup=5, repeats=20))  # the measurer of the committed float tables


def sampled_keys(resolution: int, count: int, seed: int) -> list[LayerKey]:
    keys = space_keys(make_space("mnasnet", resolution=resolution, in_channels=3, num_classes=1000))
    return random.Random(seed).sample(keys, count)


def one_pass(keys: list[LayerKey], blocks: list[int], reference, offset: int) -> dict[int, list[tuple[float, float]]]:
    """Every key with every block size: ``(entry in reference units, seconds)`` per key."""
    out: dict[int, list[tuple[float, float]]] = {b: [] for b in blocks}
    for index, key in enumerate(keys):
        turn = (index + offset) % len(blocks)
        for block in blocks[turn:] + blocks[:turn]:
            start = time.perf_counter()
            row = measure_key(MEASURER, key, BuildConfig(reference_block=block), reference)
            out[block].append((row["raw_median_ms"] / row["ref_ms"], time.perf_counter() - start))
    return out


def figures(passes: list[dict[int, list[tuple[float, float]]]], block: int, first: int) -> dict[str, float]:
    units = np.array([[entry for entry, _ in one[block]] for one in passes])
    seconds = np.array([[s for _, s in one[block]] for one in passes])
    base = np.array([[entry for entry, _ in one[first]] for one in passes])
    diffs = np.abs(units[1:] / units[0] - 1).ravel()
    return {"reference_block": block, "seconds_per_key_median": float(np.median(seconds)),
            "seconds_per_key_mean": float(np.mean(seconds)),
            "retest_median_abs_diff": float(np.median(diffs)), "retest_share_within_5pct": float(np.mean(diffs <= 0.05)),
            "offset_from_first": float(np.median(units / base))}


def measure_resolution(resolution: int, args: argparse.Namespace) -> dict:
    manifest = json.loads((Path(args.tables) / f"mnasnet-r{resolution}" / "manifest.json").read_text())
    ref_spec = parse_spec(manifest["reference"]["spec"])
    reference = block_runner(MEASURER, cached_model(MEASURER, ref_spec), spec_input_shape(ref_spec))
    keys, passes, start = sampled_keys(resolution, args.keys, args.seed), [], time.perf_counter()
    for index in range(args.passes):
        if index:
            time.sleep(args.gap_s)
        passes.append(one_pass(keys, args.blocks, reference, index))
        print(f"r{resolution}: pass {index + 1} of {args.passes} done ({time.perf_counter() - start:.0f} s)", flush=True)
    return {"resolution": resolution, "reference": manifest["reference"]["spec"], "keys": len(keys),
            "figures": [figures(passes, b, args.blocks[0]) for b in args.blocks],
            "values": [{str(b): one[b] for b in args.blocks} for one in passes], "seconds": round(time.perf_counter() - start, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolutions", type=int, nargs="+", default=[32, 224])
    parser.add_argument("--keys", type=int, default=60)
    parser.add_argument("--blocks", type=int, nargs="+", default=[5, 2, 1])
    parser.add_argument("--passes", type=int, default=2)
    parser.add_argument("--gap-s", type=float, default=20.0, help="pause between passes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tables", default="results/latency", help="folder of the committed tables (their reference models)")
    parser.add_argument("--quiet-machine", action="store_true")
    parser.add_argument("--json", default="results/latency/reference_block.json")
    args = parser.parse_args()
    with contextlib.nullcontext() if args.quiet_machine else LoadInjector(seed=0):
        results = [measure_resolution(r, args) for r in args.resolutions]
    write_json(Path(args.json), {"injector": not args.quiet_machine, "passes": args.passes, "seed": args.seed,
                                 "measurer": MEASURER.settings_dict(), "resolutions": results})
    for result in results:
        print(f"r{result['resolution']}:", json.dumps(result["figures"], indent=1))


if __name__ == "__main__":
    main()
