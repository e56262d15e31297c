"""Benchmark: does paired timing hold on a noisy machine? Test-retest and table openings.

1. Test-retest: 20 sampled specs of the MnasNet space at 32x32 (1 channel, 10 classes, as the
   demo trains) and at 224x224, each measured in two passes minutes apart, every spec alike:
   the paired ratio to a reference (``latency.paired``, 24 pairs, its default blocks: 10 runs
   since 2026-12-05, sized by run time to last 2 ms (3 to 10 runs) before) on the measurer's
   clock (thread CPU time for 1-thread ONNX Runtime), the same with fixed blocks (``--blocks``,
   3 runs by default), and on the wall clock; the whole-model check NetAdapt and the
   pipeline use (pairs added until +/- 1.5%, measurer's clock); and, beside them, the
   unpaired statistic used before (10th percentile of 3 rounds x 20 runs, wall clock, in ms). Figures:
   median |pass 2 / pass 1 - 1| and the share of specs within 5%.
2. Table openings: a lazy table built here, opened 20 times (``latency.drift.open_table``):
   refusals counted; then the same table with its signature edited as if from other hardware
   (probe ratios x 1.3), opened 20 times: refusals counted.

Both with the load injector on (``latency.noise``: one busy/idle process per core) unless
``--quiet-machine``. Writes ``results/latency/paired_timing.json`` (``--parts drift``: only
part 2, merged into the figures already there)::

    .venv/bin/python benchmarks/bench_paired_timing.py [--quiet-machine] [--parts test_retest drift]
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np

from latency.drift import DriftError, open_table
from latency.endtoend import measure_specs, prepared_model, spec_input_shape
from latency.lazy import ensure_table
from latency.measurers import OrtMeasurer, OrtSettings
from latency.noise import LoadInjector
from latency.paired import WHOLE_MODEL_PRECISION
from latency.validation import sample_specs
from search_spaces.mnasnet_space import MnasNetSpace
from search_spaces.reference import reference_spec
from storage.statefiles import write_json

SHAPES = {32: (1, 10), 224: (3, 1000)}
TARGETS = {"median_abs_diff": 0.02, "share_within_5pct": 0.95, "refusals_own_table": 0, "refusals_other_hardware": 20}


WALL = OrtMeasurer(OrtSettings(warmup=5, repeats=20, clock="wall"))


def unpaired_ms(model: bytes, spec) -> float:
    """The statistic used before paired timing: p10 of 3 rounds x 20 runs on the wall clock (ms)."""
    runner = WALL.runner(model, spec_input_shape(spec))
    runner.run(0, 5)
    return float(np.percentile(np.concatenate([runner.run(20) for _ in range(3)]), 10))


def one_pass(measurer: OrtMeasurer, specs: list, models: list, reference, blocks: tuple[int, ...] = (3,)) -> dict[str, object]:
    """Every spec alike: paired on the measurer's clock, the whole-model check, paired on the wall
    clock, unpaired (``_whole_s``: the whole-model check's seconds for all specs)."""
    tick = time.perf_counter()
    whole = measure_specs(measurer, specs, reference, pairs=24, passes=2, models=models,
                          precision=WHOLE_MODEL_PRECISION)
    whole_s = time.perf_counter() - tick
    return {"paired": [r.ratio for r in measure_specs(measurer, specs, reference, pairs=24, models=models)],
            **{f"paired_{k}run_blocks": [r.ratio for r in measure_specs(measurer, specs, reference, pairs=24,
                                                                         models=models, block=k)] for k in blocks},
            "paired_whole_model_check": [r.ratio for r in whole],
            "paired_wall_clock": [r.ratio for r in measure_specs(WALL, specs, reference, pairs=24, models=models)],
            "unpaired_p10_ms": [unpaired_ms(m, s) for m, s in zip(models, specs)], "_whole_s": whole_s}


def agreement(first: list[float], second: list[float]) -> dict[str, float]:
    diff = np.abs(np.asarray(second) / np.asarray(first) - 1)
    return {"median_abs_diff": float(np.median(diff)), "share_within_5pct": float(np.mean(diff <= 0.05)),
            "max_abs_diff": float(np.max(diff)), "n": int(diff.size)}


def test_retest(resolution: int, gap_s: float, blocks: tuple[int, ...] = (3,)) -> dict:
    in_channels, classes = SHAPES[resolution]
    space = MnasNetSpace(resolution=resolution, in_channels=in_channels, num_classes=classes)
    specs = sample_specs(space, 20, seed=resolution)
    measurer = OrtMeasurer(OrtSettings(warmup=5, repeats=20))
    reference = reference_spec("mobilenetv3-small", resolution=resolution, in_channels=in_channels, num_classes=classes)
    models = [prepared_model(measurer, s) for s in specs]
    first = one_pass(measurer, specs, models, reference, blocks)
    time.sleep(gap_s)
    second = one_pass(measurer, specs, models, reference, blocks)
    return {**{name: agreement(first[name], second[name]) for name in first if not name.startswith("_")},
            "whole_model_check_s_per_spec": round((first["_whole_s"] + second["_whole_s"]) / (2 * len(specs)), 2),
            "clock": measurer.settings.clock,
            "gap_s": gap_s, "specs": len(specs)}


def openings(folder: Path, count: int) -> dict:
    refused, factors, errors = 0, [], []
    for _ in range(count):
        try:
            report = open_table(folder, reuse_s=0)[1]  # each opening measures its own probe
            factors.append(report.ratio)
            errors.append(report.signature_error)
        except DriftError:
            refused += 1
    return {"openings": count, "refused": refused,
            "speed_factor_range": [min(factors), max(factors)] if factors else None,
            "accepted_signature_error_range": [min(errors), max(errors)] if errors else None,
            "signature_resolution": json.loads((folder / "manifest.json").read_text())["signature"].get("resolution")}


def drift_check(work: Path, count: int) -> dict:
    table, _ = ensure_table(work / "table", space="mnasnet", resolution=32, in_channels=1, num_classes=10)
    own = openings(table, count)
    other = work / "other"
    shutil.copytree(table, other)
    manifest = json.loads((other / "manifest.json").read_text())
    manifest["signature"]["ratios"] = {k: 1.3 * v for k, v in manifest["signature"]["ratios"].items()}
    (other / "manifest.json").write_text(json.dumps(manifest))
    return {"own_table": own, "other_hardware_signature_x1.3": openings(other, count)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quiet-machine", action="store_true", help="no load injector")
    parser.add_argument("--gap-s", type=float, default=120.0, help="seconds between the two passes")
    parser.add_argument("--openings", type=int, default=20)
    parser.add_argument("--work", default="results/runs/bench-paired-timing")
    parser.add_argument("--out", default="results/latency/paired_timing.json")
    parser.add_argument("--parts", nargs="+", choices=("test_retest", "drift"), default=["test_retest", "drift"])
    parser.add_argument("--resolutions", type=int, nargs="+", choices=sorted(SHAPES), default=sorted(SHAPES))
    parser.add_argument("--blocks", type=int, nargs="+", default=[3],
                        help="fixed block sizes measured beside the sized blocks (a column each)")
    args = parser.parse_args()
    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    noise = contextlib.nullcontext() if args.quiet_machine else LoadInjector(seed=0)
    start = time.perf_counter()
    out = Path(args.out)
    result = json.loads(out.read_text()) if out.is_file() and len(args.parts) < 2 else {}
    with noise:
        result.update({"injector": not args.quiet_machine, "targets": TARGETS})
        if "test_retest" in args.parts:
            result["test_retest"] = {f"r{r}": test_retest(r, args.gap_s, tuple(args.blocks)) for r in args.resolutions}
        if "drift" in args.parts:
            result["drift"] = drift_check(work, args.openings)
    part = "seconds" if len(args.parts) == 2 else f"seconds_{args.parts[0]}"
    result[part] = round(time.perf_counter() - start, 1)
    result[f"load_average_at_end{'' if len(args.parts) == 2 else '_' + args.parts[0]}"] = list(os.getloadavg())
    write_json(Path(args.out), result)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
