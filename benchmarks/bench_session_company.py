"""Benchmark: does a model's paired ratio depend on the other models timed in the same session?

The platform matrix once timed every found model of a platform in one session with the
reference; NetAdapt's round check times one. On ONNX Runtime int8 the two disagreed by 3-4%.
This times one found model against MobileNetV3-Small on its platform, alternately alone and in
one session with the other found models, ``--repeats`` times each, every reading spread over
10 s (:data:`latency.paired.WHOLE_MODEL_SECONDS`) as both the round check and the matrix take
it. Writes ``results/platforms/session_company.json``::

    flock /tmp/mobilenas-bench.lock .venv/bin/python benchmarks/bench_session_company.py \\
        --matrix results/platforms/run_three_platforms/matrix.json --platform ort-cpu-int8
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from latency.endtoend import measure_specs
from latency.paired import WHOLE_MODEL_PRECISION, WHOLE_MODEL_SECONDS
from latency.platforms import builtin_platforms
from search_spaces.encoding import parse_spec
from search_spaces.resolve import resolve_spec
from storage.runfolder import machine_info, package_versions
from storage.statefiles import write_json


def reading(measurer, specs: list, mine, reference) -> float:
    """``mine``'s paired ratio to ``reference`` when ``specs`` share its session."""
    results = measure_specs(measurer, specs, reference, pairs=24, passes=2, precision=WHOLE_MODEL_PRECISION,
                            min_seconds=WHOLE_MODEL_SECONDS)
    return float(results[specs.index(mine)].ratio)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--matrix", default="results/platforms/run_three_platforms/matrix.json",
                        help="a platform matrix whose 'found' specs are timed")
    parser.add_argument("--platform", default="ort-cpu-int8", help="the platform timed on, whose found model is timed")
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument("--out", default="results/platforms/session_company.json")
    args = parser.parse_args()
    found = {name: parse_spec(text) for name, text in json.loads(Path(args.matrix).read_text())["found"].items()}
    mine = found[args.platform]
    reference = resolve_spec("mobilenetv3-small", resolution=mine.resolution, num_classes=mine.num_classes,
                             in_channels=mine.in_channels)
    measurer = builtin_platforms()[args.platform].make_measurer()
    readings: dict[str, list[float]] = {"alone": [], "company": []}
    start = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    for repeat in range(args.repeats):
        for mode in ("alone", "company"):
            specs = [mine] if mode == "alone" else list(found.values())
            readings[mode].append(reading(measurer, specs, mine, reference))
            print(f"{repeat} {mode}: {readings[mode][-1]:.4f}x", flush=True)
    summary = {mode: {"median": float(np.median(v)), "min": min(v), "max": max(v)} for mode, v in readings.items()}
    write_json(Path(args.out), {"what": __doc__.splitlines()[0], "platform": args.platform, "matrix": args.matrix,
                                "company": [n for n in found if n != args.platform], "readings": readings,
                                "summary": summary, "seconds_per_reading": WHOLE_MODEL_SECONDS,
                                "started_utc": start, "machine": machine_info(), "packages": package_versions()})
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
