"""Benchmark: build the reference latency tables of this machine and validate them.

For each resolution: ``mobilenas latency build --space mnasnet --resolution R`` into
``results/latency/mnasnet-rR`` (resumable: rerun after a kill and it continues), then
``mobilenas latency validate ... -n N`` (100 random specs of the default space, disjoint from
the calibration specs; every spec measured alike in two independent passes, whose test-retest
agreement is the noise floor). Writes ``results/latency/summary.json`` with every figure next
to its target and the noise floor. Run it under the shared benchmark lock::

    flock /tmp/mobilenas-bench.lock .venv/bin/python benchmarks/bench_latency_table.py
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from mobilenas.cli import main as cli

TARGETS = {"within_10pct": 0.99, "within_5pct": 0.90, "spearman": 0.98, "build_minutes_total": 15.0}


def run(argv: list[str]) -> None:
    print("$ mobilenas " + " ".join(argv), flush=True)
    code = cli(argv)
    if code != 0:
        sys.exit(f"command failed with exit code {code}: mobilenas {' '.join(argv)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolutions", type=int, nargs="+", default=[32, 224])
    parser.add_argument("--out", default="results/latency")
    parser.add_argument("-n", type=int, default=100, help="validation specs per resolution")
    parser.add_argument("--calibration-specs", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3, help="validation sweeps per pass (2 passes)")
    parser.add_argument("--skip-validate", action="store_true")
    args = parser.parse_args()
    summary: dict[str, object] = {"targets": TARGETS, "tables": {}}
    for resolution in args.resolutions:
        table = Path(args.out) / f"mnasnet-r{resolution}"
        start = time.perf_counter()
        run(["-v", "latency", "build", "--space", "mnasnet", "--resolution", str(resolution), "--out", str(table),
             "--calibration-specs", str(args.calibration_specs), "--quiet"])
        manifest = json.loads((table / "manifest.json").read_text())
        entry = {"entries": manifest["entries"], "build_timings_s": manifest.get("build_timings"),
                 "this_invocation_build_s": round(time.perf_counter() - start, 1),
                 "calibration": manifest["calibration"][str(resolution)]}
        if not args.skip_validate:
            run(["-v", "latency", "validate", str(table), "-n", str(args.n), "--rounds", str(args.rounds), "--quiet"])
            entry["validation"] = json.loads((table / "validation.json").read_text())
        summary["tables"][f"r{resolution}"] = entry
        (Path(args.out) / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    total = sum(sum(v for k, v in (t["build_timings_s"] or {}).items() if k.endswith("_s"))
                for t in summary["tables"].values())
    summary["build_minutes_total"] = round(total / 60, 2)
    (Path(args.out) / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    print(json.dumps({k: v for k, v in summary.items() if k != "tables"}, indent=2))


if __name__ == "__main__":
    main()
